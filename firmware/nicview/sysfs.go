package nicview

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Bond is a bond as its sysfs attributes show it
// (drivers/net/bonding/bond_sysfs.c).
type Bond struct {
	// Name is the bond's netdev.
	Name string
	// Mode is the bonding mode's name ("active-backup").
	Mode string
	// Slaves are its ports in enslave order: bonding/slaves walks the
	// bond's lower-device list, to which each new port is appended.
	Slaves []string
	// Primary is the primary port ("" when none is set) and Active the
	// active one ("" when none, or the mode has none).
	Primary, Active string
	// MIIMon is the MII link monitoring interval in ms (0: off).
	MIIMon int
	// ARPInterval is the ARP monitoring interval in ms (0: off) and
	// ARPTargets the addresses it probes.
	ARPInterval int
	ARPTargets  []string
	// FailOverMAC is the fail_over_mac policy ("none", "active", "follow").
	FailOverMAC string
}

// Monitored reports whether the bond watches its ports' links at all
// (a bond with neither MII nor ARP monitoring never fails over).
func (b Bond) Monitored() bool {
	return b.MIIMon > 0 || (b.ARPInterval > 0 && len(b.ARPTargets) > 0)
}

// ErrNotBond: the netdev exists but is not a bond (no bonding/ directory).
var ErrNotBond = errors.New("not a bond")

// ReadBond reads bond name's attributes under the sysfs root.
func ReadBond(root, name string) (Bond, error) {
	dir := filepath.Join(root, "class", "net", name)
	if _, err := os.Stat(dir); err != nil {
		return Bond{}, fmt.Errorf("bond %s: no such network device: %w", name, err)
	}
	dir = filepath.Join(dir, "bonding")
	if _, err := os.Stat(dir); err != nil {
		return Bond{}, fmt.Errorf("bond %s: %w", name, ErrNotBond)
	}
	b := Bond{Name: name}
	var err error
	read := func(attr string) string {
		if err != nil {
			return ""
		}
		var s string
		s, err = readString(filepath.Join(dir, attr))
		return s
	}
	// mode and fail_over_mac read "active-backup 1", "none 0": name, number.
	b.Mode, _, _ = strings.Cut(read("mode"), " ")
	b.Slaves = strings.Fields(read("slaves"))
	b.Primary = read("primary")
	b.Active = read("active_slave")
	miimon := read("miimon")
	arpInterval := read("arp_interval")
	b.ARPTargets = strings.Fields(read("arp_ip_target"))
	b.FailOverMAC, _, _ = strings.Cut(read("fail_over_mac"), " ")
	if err != nil {
		return Bond{}, fmt.Errorf("bond %s: %w", name, err)
	}
	if len(b.ARPTargets) == 0 {
		b.ARPTargets = nil
	}
	if len(b.Slaves) == 0 {
		b.Slaves = nil
	}
	if b.MIIMon, err = strconv.Atoi(miimon); err != nil {
		return Bond{}, fmt.Errorf("bond %s: miimon %q: %w", name, miimon, err)
	}
	if b.ARPInterval, err = strconv.Atoi(arpInterval); err != nil {
		return Bond{}, fmt.Errorf("bond %s: arp_interval %q: %w", name, arpInterval, err)
	}
	return b, nil
}

// PCIAddr is a PCI address split into its parts: domain:bus:device.function.
type PCIAddr struct {
	Domain, Bus, Device, Function int
}

// ParsePCI parses "0000:3b:00.1".
func ParsePCI(s string) (PCIAddr, error) {
	var a PCIAddr
	if _, err := fmt.Sscanf(s, "%04x:%02x:%02x.%x", &a.Domain, &a.Bus, &a.Device, &a.Function); err != nil {
		return PCIAddr{}, fmt.Errorf("PCI address %q: %w", s, err)
	}
	if a.String() != strings.ToLower(s) {
		return PCIAddr{}, fmt.Errorf("PCI address %q: not of the form 0000:3b:00.1", s)
	}
	return a, nil
}

func (a PCIAddr) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", a.Domain, a.Bus, a.Device, a.Function)
}

// SameSlot reports whether a and b are functions of one PCI device (one
// card's ports: same domain, bus and device).
func (a PCIAddr) SameSlot(b PCIAddr) bool {
	return a.Domain == b.Domain && a.Bus == b.Bus && a.Device == b.Device
}

// ReadFile reads the sysfs (or debugfs) attribute at rel under root,
// trimmed. A missing file gives an error matching fs.ErrNotExist.
func ReadFile(root, rel string) (string, error) {
	return readString(filepath.Join(root, rel))
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}
