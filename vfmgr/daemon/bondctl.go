package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SysfsBonds reads and sets a bond's active port through
// /sys/class/net/BOND/bonding/active_slave (Documentation/networking/bonding.rst).
type SysfsBonds struct {
	// Sysfs is the sysfs root (default /sys).
	Sysfs string
}

var _ Bonds = SysfsBonds{}

func (s SysfsBonds) file(bond string) string {
	root := s.Sysfs
	if root == "" {
		root = "/sys"
	}
	return filepath.Join(root, "class", "net", bond, "bonding", "active_slave")
}

// Active returns the bond's active port ("" when none).
func (s SysfsBonds) Active(_ context.Context, bond string) (string, error) {
	b, err := os.ReadFile(s.file(bond))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("bond %s: not a bond (no %s)", bond, s.file(bond))
	}
	if err != nil {
		return "", fmt.Errorf("bond %s: %w", bond, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SetActive makes pf the bond's active port (active-backup mode only; the
// kernel refuses a port without link).
func (s SysfsBonds) SetActive(_ context.Context, bond, pf string) error {
	if err := os.WriteFile(s.file(bond), []byte(pf), 0o644); err != nil {
		return fmt.Errorf("bond %s: make %s active: %w", bond, pf, err)
	}
	return nil
}
