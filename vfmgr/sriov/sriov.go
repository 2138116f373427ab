package sriov

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/vflag/vflag/internal/netlinksafe"
	"github.com/vflag/vflag/vfmgr"
)

// ErrNoSRIOV: the device has no SR-IOV capability (no sriov_totalvfs).
var ErrNoSRIOV = errors.New("no SR-IOV capability")

// Kernel is the SR-IOV side of the running kernel. The zero value works on
// the host: /sys and netlink's default handle. Its methods are safe for
// concurrent use, but the kernel does not order concurrent changes of one
// VF: callers serialise changes per PF.
//
// Covered by unit tests (fake sysfs tree, fake rtnetlink seam): PF, the
// sysfs half of VFs, SetNumVFs, and the order and rollback of ConfigureVF
// and ResetVF. Covered by the testbed tier only (real igb): the rtnetlink
// half of VFs and of ConfigureVF/ResetVF (netlinkVFs below), and SetNumVFs
// against a real sriov_numvfs.
type Kernel struct {
	// Sysfs is where sysfs is mounted; "" means "/sys".
	Sysfs string
	// Handle is the rtnetlink handle to use; nil means netlink's default
	// handle (the calling thread's network namespace).
	Handle *netlink.Handle

	// links replaces the rtnetlink side in unit tests; nil means netlinkVFs
	// over Handle.
	links vfLinks
}

func (k *Kernel) root() string {
	if k.Sysfs == "" {
		return "/sys"
	}
	return k.Sysfs
}

func (k *Kernel) rtnl() vfLinks {
	if k.links != nil {
		return k.links
	}
	return netlinkVFs{nl: netlinksafe.New(k.Handle), raw: k.Handle}
}

// netdev is the sysfs directory of the netdev name: class/net/NAME.
func (k *Kernel) netdev(name string, elem ...string) string {
	return filepath.Join(append([]string{k.root(), "class", "net", name}, elem...)...)
}

// PF describes the physical function with netdev name: its PCI address and
// driver, sriov_totalvfs and sriov_numvfs, carrier, and the bond it is
// enslaved to (Bond is "" when it has no master, or a master that is not a
// bond). A device without SR-IOV gives an error matching ErrNoSRIOV.
func (k *Kernel) PF(ctx context.Context, name string) (vfmgr.PF, error) {
	if err := ctx.Err(); err != nil {
		return vfmgr.PF{}, fmt.Errorf("pf %s: %w", name, err)
	}
	if _, err := os.Stat(k.netdev(name)); err != nil {
		return vfmgr.PF{}, fmt.Errorf("pf %s: no such network device: %w", name, err)
	}
	pci, err := linkBase(k.netdev(name, "device"))
	if err != nil {
		return vfmgr.PF{}, fmt.Errorf("pf %s: not a PCI device: %w", name, err)
	}
	pf := vfmgr.PF{Name: name, PCI: pci}
	id := pfID(name, pci)
	// An unbound device has no driver link; a netdev rarely outlives its driver.
	if drv, err := linkBase(k.netdev(name, "device", "driver")); err == nil {
		pf.Driver = drv
	} else if !errors.Is(err, fs.ErrNotExist) {
		return vfmgr.PF{}, fmt.Errorf("pf %s: driver: %w", id, err)
	}
	if pf.TotalVFs, err = readInt(k.netdev(name, "device", "sriov_totalvfs")); errors.Is(err, fs.ErrNotExist) {
		return vfmgr.PF{}, fmt.Errorf("pf %s: %w", id, ErrNoSRIOV)
	} else if err != nil {
		return vfmgr.PF{}, fmt.Errorf("pf %s: %w", id, err)
	}
	if pf.NumVFs, err = readInt(k.netdev(name, "device", "sriov_numvfs")); err != nil {
		return vfmgr.PF{}, fmt.Errorf("pf %s: %w", id, err)
	}
	if pf.Carrier, err = carrier(k.netdev(name, "carrier")); err != nil {
		return vfmgr.PF{}, fmt.Errorf("pf %s: %w", id, err)
	}
	// "master" is the upper device a port is enslaved to (bond, bridge,
	// team); only a bond has a bonding/ directory (drivers/net/bonding/bond_sysfs.c).
	master, err := linkBase(k.netdev(name, "master"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return vfmgr.PF{}, fmt.Errorf("pf %s: master: %w", id, err)
	default:
		if _, err := os.Stat(k.netdev(name, "master", "bonding")); err == nil {
			pf.Bond = master
		}
	}
	return pf, nil
}

// VFs lists the VFs of pf, by index: PCI address and host netdev from
// sysfs (device/virtfnN), MAC, VLAN, QoS, spoof checking and trust as the
// PF reports them over rtnetlink (IFLA_VFINFO_LIST). A MAC of all zeros (none
// set) is reported as nil.
func (k *Kernel) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list VFs of %s: %w", pf, err)
	}
	pci, err := linkBase(k.netdev(pf, "device"))
	if err != nil {
		return nil, fmt.Errorf("list VFs of %s: not a PCI device: %w", pf, err)
	}
	idxs, err := k.virtfns(pf)
	if err != nil {
		return nil, fmt.Errorf("list VFs of %s: %w", pfID(pf, pci), err)
	}
	if len(idxs) == 0 {
		return nil, nil
	}
	_, settings, err := k.rtnl().vfs(pf)
	if err != nil {
		return nil, fmt.Errorf("list VFs of %s: %w", pfID(pf, pci), err)
	}
	out := make([]vfmgr.VF, 0, len(idxs))
	for _, i := range idxs {
		vf := vfmgr.VF{PF: pf, Index: i}
		if vf.PCI, err = linkBase(k.netdev(pf, "device", virtfn(i))); err != nil {
			return nil, fmt.Errorf("list VFs of %s: vf %d: %w", pfID(pf, pci), i, err)
		}
		if vf.Netdev, err = soleEntry(k.netdev(pf, "device", virtfn(i), "net")); err != nil {
			return nil, fmt.Errorf("list VFs of %s: %s: %w", pfID(pf, pci), vf.ID(), err)
		}
		if t, err := os.Readlink(k.netdev(pf, "device", virtfn(i), "driver")); err == nil {
			vf.Driver = filepath.Base(t)
		}
		if i >= len(settings) {
			return nil, fmt.Errorf("list VFs of %s: %s: not in the PF's rtnetlink VF list (%d entries)", pfID(pf, pci), vf.ID(), len(settings))
		}
		s := settings[i]
		vf.MAC, vf.VLAN, vf.QoS, vf.SpoofChk, vf.Trust = s.MAC, s.VLAN, s.QoS, s.SpoofChk, s.Trust
		out = append(out, vf)
	}
	return out, nil
}

// SetNumVFs sets sriov_numvfs of pf to n, creating or destroying VFs. It
// fails, naming both numbers, when n exceeds sriov_totalvfs.
//
// The kernel refuses to change a non-zero count to another non-zero count
// (sriov_numvfs_store in drivers/pci/iov.c: "%d VFs already enabled. Disable
// before enabling %d VFs", -EBUSY), so SetNumVFs then writes 0 first: every
// existing VF, with its settings and any guest using it, goes away. New VFs
// get host netdevs asynchronously (igbvf on igb: within about a second).
func (k *Kernel) SetNumVFs(ctx context.Context, pf string, n int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set sriov_numvfs of %s to %d: %w", pf, n, err)
	}
	pci, err := linkBase(k.netdev(pf, "device"))
	if err != nil {
		return fmt.Errorf("set sriov_numvfs of %s to %d: not a PCI device: %w", pf, n, err)
	}
	id := pfID(pf, pci)
	total, err := readInt(k.netdev(pf, "device", "sriov_totalvfs"))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("set sriov_numvfs of %s to %d: %w", id, n, ErrNoSRIOV)
	} else if err != nil {
		return fmt.Errorf("set sriov_numvfs of %s to %d: %w", id, n, err)
	}
	cur, err := readInt(k.netdev(pf, "device", "sriov_numvfs"))
	if err != nil {
		return fmt.Errorf("set sriov_numvfs of %s to %d: %w", id, n, err)
	}
	writes, err := numVFsWrites(cur, n, total)
	if err != nil {
		return fmt.Errorf("set sriov_numvfs of %s to %d: %w", id, n, err)
	}
	for _, w := range writes {
		if err := writeInt(k.netdev(pf, "device", "sriov_numvfs"), w); err != nil {
			return fmt.Errorf("set sriov_numvfs of %s to %d (was %d): %w", id, n, cur, err)
		}
	}
	return nil
}

// numVFsWrites returns the values to write to sriov_numvfs, in order, to go
// from cur to n VFs out of total.
func numVFsWrites(cur, n, total int) ([]int, error) {
	switch {
	case n < 0:
		return nil, fmt.Errorf("negative VF count %d", n)
	case n > total:
		return nil, fmt.Errorf("%d VFs requested, sriov_totalvfs is %d", n, total)
	case n == cur:
		return nil, nil
	case cur != 0 && n != 0:
		return []int{0, n}, nil
	default:
		return []int{n}, nil
	}
}

// virtfns returns the indexes N of the device/virtfnN links of pf, sorted.
func (k *Kernel) virtfns(pf string) ([]int, error) {
	entries, err := os.ReadDir(k.netdev(pf, "device"))
	if err != nil {
		return nil, err
	}
	var idxs []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "virtfn")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(rest); err == nil && i >= 0 {
			idxs = append(idxs, i)
		}
	}
	slices.Sort(idxs)
	return idxs, nil
}

// vfPCI returns the PCI address of VF idx of pf and a name for errors:
// "pf0 vf 3 (0000:01:10.6)". A VF that does not exist is an error.
func (k *Kernel) vfPCI(pf string, idx int) (string, error) {
	pci, err := linkBase(k.netdev(pf, "device", virtfn(idx)))
	if err != nil {
		return "", fmt.Errorf("%s vf %d: no such VF: %w", pf, idx, err)
	}
	return pci, nil
}

func virtfn(i int) string { return "virtfn" + strconv.Itoa(i) }

func pfID(name, pci string) string { return fmt.Sprintf("%s (%s)", name, pci) }

// linkBase returns the last element of the symlink at path: the PCI address
// of a device link, the driver of a driver link, the name of a master.
func linkBase(path string) (string, error) {
	target, err := os.Readlink(path)
	if err != nil {
		return "", err
	}
	return filepath.Base(target), nil
}

// soleEntry returns the name of the one entry of dir (a VF's net/), or ""
// when dir does not exist or is empty (no host driver bound).
func soleEntry(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	switch len(entries) {
	case 0:
		return "", nil
	case 1:
		return entries[0].Name(), nil
	default:
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		return "", fmt.Errorf("%s: several netdevs: %s", dir, strings.Join(names, ", "))
	}
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return n, nil
}

// writeInt writes n to an existing sysfs attribute (never creating it).
func writeInt(path string, n int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %d to %s: %w", n, filepath.Base(path), err)
	}
	_, err = f.WriteString(strconv.Itoa(n) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %d to %s: %w", n, filepath.Base(path), err)
	}
	return nil
}

// carrier reads a netdev's carrier file: "1" up, "0" down. The kernel
// answers EINVAL while the device is administratively down
// (net/core/net-sysfs.c carrier_show): no carrier either.
func carrier(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, syscall.EINVAL) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read carrier: %w", err)
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// zeroMACToNil reports an all-zero MAC (none set) as nil.
func zeroMACToNil(mac net.HardwareAddr) net.HardwareAddr {
	for _, b := range mac {
		if b != 0 {
			return mac
		}
	}
	return nil
}
