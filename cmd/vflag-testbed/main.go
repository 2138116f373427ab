// Command vflag-testbed boots and drives vflag's nested-QEMU testbed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vflag/vflag/testenv/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.New(os.Stdin, os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	var exit cli.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "vflag-testbed:", err)
		os.Exit(1)
	}
}
