package hooks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vflag/vflag/vfmgr"
)

var _ PCILookup = Sysfs{}

// Sysfs finds the bond of a VF's PF in sysfs, read only:
// <Root>/bus/pci/devices/<VF>/physfn is the PF (drivers/pci/iov.c), its
// net/<netdev>/master the device it is enslaved to, a bond if that has a
// bonding directory (drivers/net/bonding/bond_sysfs.c).
type Sysfs struct {
	// Root is where sysfs is mounted ("/sys").
	Root string
}

// BondOf implements PCILookup.
func (s Sysfs) BondOf(pci string) (string, error) {
	if c, err := vfmgr.CanonicalPCI(pci); err != nil || c != pci {
		return "", fmt.Errorf("PCI address %q is not in canonical form", pci)
	}
	pf := filepath.Join(s.Root, "bus", "pci", "devices", pci, "physfn")
	nets, err := os.ReadDir(filepath.Join(pf, "net"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // no VF here, or its PF has no netdev
	}
	if err != nil {
		return "", fmt.Errorf("VF %s: %w", pci, err)
	}
	for _, n := range nets {
		master := filepath.Join(pf, "net", n.Name(), "master")
		target, err := os.Readlink(master)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("VF %s: PF %s: %w", pci, n.Name(), err)
		}
		// The kernel resolves the links (a lexical join would not: the
		// path goes through symlinks).
		if st, err := os.Stat(filepath.Join(master, "bonding")); err == nil && st.IsDir() {
			return filepath.Base(target), nil
		}
	}
	return "", nil
}
