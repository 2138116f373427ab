package rdmamgr

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Driver names of the software RDMA devices, which have no PCI function
// and so no device/driver link.
const (
	driverRXE = "rxe"
	driverSIW = "siw"
)

// Devices lists every RDMA device: name, index, node GUID and firmware
// from rdma netlink (Links), driver and ports (state, netdev, GID table)
// from sysfs (class/infiniband/DEV under Sysfs). A device that disappears
// between the two reads is left out.
func (m *Manager) Devices(ctx context.Context) ([]Device, error) {
	links, err := m.links().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list RDMA devices: %w", err)
	}
	out := make([]Device, 0, len(links))
	for _, l := range links {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list RDMA devices: %w", err)
		}
		d, err := m.device(l)
		if errors.Is(err, errGone) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list RDMA devices: %s: %w", l.Name, err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Device) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// errGone: the device netlink listed has no sysfs directory (any more).
var errGone = errors.New("device gone")

// ibDir is the sysfs directory of RDMA device name: class/infiniband/NAME.
func (m *Manager) ibDir(name string, elem ...string) string {
	return filepath.Join(append([]string{m.root(), "class", "infiniband", name}, elem...)...)
}

// netDir is the sysfs directory of netdev name: class/net/NAME.
func (m *Manager) netDir(name string, elem ...string) string {
	return filepath.Join(append([]string{m.root(), "class", "net", name}, elem...)...)
}

// device reads the sysfs side of the device l.
func (m *Manager) device(l RDMALink) (Device, error) {
	if _, err := os.Stat(m.ibDir(l.Name)); errors.Is(err, fs.ErrNotExist) {
		return Device{}, errGone
	} else if err != nil {
		return Device{}, err
	}
	d := Device{Name: l.Name, Index: l.Index, NodeGUID: l.NodeGUID, FirmwareVersion: l.FirmwareVersion}
	var err error
	if d.Driver, err = m.driver(l.Name); err != nil {
		return Device{}, err
	}
	entries, err := os.ReadDir(m.ibDir(l.Name, "ports"))
	if err != nil {
		return Device{}, fmt.Errorf("ports: %w", err)
	}
	var nums []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 0 {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	for _, n := range nums {
		p, err := m.port(d, n)
		if err != nil {
			return Device{}, fmt.Errorf("port %d: %w", n, err)
		}
		d.Ports = append(d.Ports, p)
	}
	return d, nil
}

// driver names the driver of RDMA device name: the PCI driver of its
// device (device/driver), or, for a software device (no device link), rxe
// or siw: siw registers an iWARP node ("4: RNIC", node_type), rxe an
// InfiniBand CA ("1: CA").
func (m *Manager) driver(name string) (string, error) {
	target, err := os.Readlink(m.ibDir(name, "device", "driver"))
	if err == nil {
		return filepath.Base(target), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("driver: %w", err)
	}
	if _, err := os.Stat(m.ibDir(name, "device")); err == nil {
		return "", nil // a device without a bound driver
	}
	if nt, _ := readLine(m.ibDir(name, "node_type")); strings.HasPrefix(nt, "4:") {
		return driverSIW, nil
	}
	return driverRXE, nil
}

// port reads port n of d: state, GID table, netdev.
func (m *Manager) port(d Device, n int) (Port, error) {
	dir := m.ibDir(d.Name, "ports", strconv.Itoa(n))
	p := Port{Number: n}
	st, err := readLine(filepath.Join(dir, "state"))
	if err != nil {
		return Port{}, err
	}
	// "4: ACTIVE" (state_show in drivers/infiniband/core/sysfs.c).
	if _, name, ok := strings.Cut(st, ":"); ok {
		st = name
	}
	p.State = PortState(strings.TrimSpace(st))
	if p.GIDs, err = gids(dir); err != nil {
		return Port{}, err
	}
	p.Netdev = m.portNetdev(d, n)
	return p, nil
}

// gids reads the valid entries of the GID table in the port directory dir.
// The kernel shows an empty or reserved entry as the zero GID and refuses
// to read its type and netdev (EINVAL): such entries are skipped.
func gids(dir string) ([]GID, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "gids"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var idxs []int
	for _, e := range entries {
		if i, err := strconv.Atoi(e.Name()); err == nil && i >= 0 {
			idxs = append(idxs, i)
		}
	}
	slices.Sort(idxs)
	var out []GID
	for _, i := range idxs {
		name := strconv.Itoa(i)
		s, err := readLine(filepath.Join(dir, "gids", name))
		if err != nil {
			continue
		}
		addr, err := netip.ParseAddr(s)
		if err != nil || addr.IsUnspecified() {
			continue
		}
		g := GID{Index: i, Addr: addr.Unmap()}
		if t, err := readLine(filepath.Join(dir, "gid_attrs", "types", name)); err == nil {
			g.Type = GIDType(t)
		}
		if nd, err := readLine(filepath.Join(dir, "gid_attrs", "ndevs", name)); err == nil {
			g.Netdev = nd
		}
		out = append(out, g)
	}
	return out, nil
}

// portNetdev names the netdev the kernel ties port n of d to (see
// Port.Netdev), or "" when sysfs does not say:
//   - rxe: its parent attribute (rxe_verbs.c parent_show);
//   - otherwise the netdev of the default GID, index 0, which the kernel
//     sets on the port's own netdev (roce_gid_mgmt.c,
//     enum_netdev_default_gids) and removes on an inactive bond port;
//   - otherwise the netdev of the device's PCI function (device/net/), the
//     one whose dev_port is n-1 when it has several.
func (m *Manager) portNetdev(d Device, n int) string {
	if d.Driver == driverRXE {
		if p, err := readLine(m.ibDir(d.Name, "parent")); err == nil && p != "" {
			return p
		}
	}
	if nd, err := readLine(m.ibDir(d.Name, "ports", strconv.Itoa(n), "gid_attrs", "ndevs", "0")); err == nil && nd != "" {
		return nd
	}
	entries, err := os.ReadDir(m.ibDir(d.Name, "device", "net"))
	if err != nil || len(entries) == 0 {
		return ""
	}
	if len(entries) == 1 {
		return entries[0].Name()
	}
	for _, e := range entries {
		if dp, err := readLine(m.ibDir(d.Name, "device", "net", e.Name(), "dev_port")); err == nil && dp == strconv.Itoa(n-1) {
			return e.Name()
		}
	}
	return ""
}

// bondInfo is what sysfs says about a bond.
type bondInfo struct {
	// name is the bond, slaves its ports (bonding/slaves, in order) and
	// drivers the PCI driver of each port ("" for none).
	name    string
	slaves  []string
	drivers map[string]string
	// bridge is the Linux bridge the bond is a port of ("" for none):
	// Soft-RoCE goes there (see view.carrier).
	bridge string
}

// bond reads bond from sysfs. A missing netdev or one that is not a bond
// (no bonding/ directory, drivers/net/bonding/bond_sysfs.c) gives an error
// matching ErrNotBond.
func (m *Manager) bond(name string) (bondInfo, error) {
	if name == "" || strings.ContainsAny(name, "/ \t\n") || name == "." || name == ".." {
		return bondInfo{}, fmt.Errorf("%q is %w: not a netdev name: name the bond (bond0)", name, ErrNotBond)
	}
	if _, err := os.Stat(m.netDir(name)); errors.Is(err, fs.ErrNotExist) {
		return bondInfo{}, fmt.Errorf("%s is %w: no network device %s: create the bond first, or name an existing one", name, ErrNotBond, name)
	} else if err != nil {
		return bondInfo{}, fmt.Errorf("bond %s: %w", name, err)
	}
	if _, err := os.Stat(m.netDir(name, "bonding")); errors.Is(err, fs.ErrNotExist) {
		return bondInfo{}, fmt.Errorf("%s is %w: %s has no bonding directory: name the bond, not one of its ports", name, ErrNotBond, m.netDir(name))
	} else if err != nil {
		return bondInfo{}, fmt.Errorf("bond %s: %w", name, err)
	}
	b := bondInfo{name: name, drivers: map[string]string{}}
	s, err := readLine(m.netDir(name, "bonding", "slaves"))
	if err != nil {
		return bondInfo{}, fmt.Errorf("bond %s: slaves: %w", name, err)
	}
	b.slaves = strings.Fields(s)
	for _, sl := range b.slaves {
		if t, err := os.Readlink(m.netDir(sl, "device", "driver")); err == nil {
			b.drivers[sl] = filepath.Base(t)
		}
	}
	// A bond that is a bridge port has its master link in sysfs
	// (net/core/dev.c netdev_upper_dev_link: "master"); a bridge has a
	// bridge/ directory (net/bridge/br_sysfs_br.c).
	if t, err := os.Readlink(m.netDir(name, "master")); err == nil {
		if _, err := os.Stat(m.netDir(filepath.Base(t), "bridge")); err == nil {
			b.bridge = filepath.Base(t)
		}
	}
	return b, nil
}

// rxeLoaded reports whether the rdma_rxe module is loaded (/sys/module/rdma_rxe).
func (m *Manager) rxeLoaded() bool {
	_, err := os.Stat(filepath.Join(m.root(), "module", "rdma_rxe"))
	return err == nil
}

// readLine returns the contents of a one-line sysfs file, trimmed.
func readLine(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
