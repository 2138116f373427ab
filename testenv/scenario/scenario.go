// Package scenario runs the testbed's measured cable-pull scenarios and
// writes their timelines under results/.
package scenario

import (
	"context"
	"fmt"
	"io"

	"github.com/vflag/vflag/testenv"
)

// Demo runs every scenario on a fresh testbed and prints the timelines.
func Demo(ctx context.Context, cfg testenv.Config, resultsDir string, out io.Writer) error {
	return fmt.Errorf("not yet")
}
