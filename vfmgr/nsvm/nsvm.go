// Package nsvm is the VM side of failover for namespace VMs, the testbed's
// stand-in for guests: a VM is a network namespace holding a VF netdev. To
// hand a VM a VF, the VF's netdev moves into the namespace under the VM's
// interface name and comes up; to take it back, it is renamed, moved back
// to the host namespace and left down. What the guest does with a new NIC
// (addresses) is the guest's business, modelled by testenv/nsguest.
package nsvm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vflag/vflag/internal/netlinksafe"
	"github.com/vflag/vflag/vfmgr"
)

// VMs hands VFs to namespace VMs. The host side is the namespace the
// daemon runs in.
type VMs struct {
	// Dir holds the namespaces' bind mounts (default /var/run/netns).
	Dir string
	// Sysfs is the host's sysfs (default /sys), to find a VF's netdev.
	Sysfs string
}

func (v VMs) dir() string {
	if v.Dir == "" {
		return "/var/run/netns"
	}
	return v.Dir
}

func (v VMs) sysfs() string {
	if v.Sysfs == "" {
		return "/sys"
	}
	return v.Sysfs
}

// vmHandle opens a netlink handle inside the VM's namespace.
func (v VMs) vmHandle(a vfmgr.Allocation) (*netlink.Handle, error) {
	if a.Netns == "" || filepath.Base(a.Netns) != a.Netns {
		return nil, fmt.Errorf("VM %s: namespace name %q: %w", a.VM, a.Netns, vfmgr.ErrNotManaged)
	}
	ns, err := netns.GetFromPath(filepath.Join(v.dir(), a.Netns))
	if err != nil {
		return nil, fmt.Errorf("VM %s: namespace %s: %w", a.VM, a.Netns, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("VM %s: netlink in %s: %w", a.VM, a.Netns, err)
	}
	return h, nil
}

// HostNetdev returns the host-side netdev of a VF ("" when it has none in
// the host namespace, e.g. because a VM holds it).
func (v VMs) HostNetdev(vf vfmgr.VFRef) (string, error) {
	dir := filepath.Join(v.sysfs(), "class", "net", vf.PF, "device", "virtfn"+strconv.Itoa(vf.Index), "net")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("netdev of %s: %w", vf, err)
	}
	if len(ents) != 1 {
		return "", nil
	}
	return ents[0].Name(), nil
}

// Plug hands the VF to the VM as a hot-plugged NIC: the VF's driver is
// bound afresh, as a guest's driver probes a new device (which is also
// what makes igbvf read the MAC the PF now sets: it reads it only at
// reset), and the new netdev moves into the VM's namespace under the VM's
// interface name and comes up.
func (v VMs) Plug(ctx context.Context, a vfmgr.Allocation, vf vfmgr.VFRef) error {
	name, err := v.rebind(ctx, vf)
	if err != nil {
		return fmt.Errorf("plug %s into VM %s: %w", vf, a.VM, err)
	}
	link, err := netlinksafe.New(nil).LinkByName(name)
	if err != nil {
		return fmt.Errorf("plug %s (%s) into VM %s: %w", vf, name, a.VM, err)
	}
	ns, err := netns.GetFromPath(filepath.Join(v.dir(), a.Netns))
	if err != nil {
		return fmt.Errorf("plug %s into VM %s: namespace %s: %w", vf, a.VM, a.Netns, err)
	}
	defer ns.Close()
	if err := netlink.LinkSetNsFd(link, int(ns)); err != nil {
		return fmt.Errorf("plug %s (%s) into VM %s (netns %s): %w", vf, name, a.VM, a.Netns, err)
	}
	if err := v.nameAndUp(a, name); err != nil {
		// Never leave a half-plugged VF in the VM: take it back.
		back := a
		back.NetnsIfname = name
		if uerr := v.Unplug(context.Background(), back); uerr != nil {
			err = fmt.Errorf("%w (and taking %s back: %w)", err, name, uerr)
		}
		return fmt.Errorf("plug %s into VM %s: %w", vf, a.VM, err)
	}
	return nil
}

// nameAndUp renames the VF netdev inside the VM to the VM's interface name
// and brings it up.
func (v VMs) nameAndUp(a vfmgr.Allocation, name string) error {
	h, err := v.vmHandle(a)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := netlinksafe.New(h).LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s vanished: %w", name, err)
	}
	if err := h.LinkSetName(l, a.NetnsIfname); err != nil {
		return fmt.Errorf("rename %s to %s: %w", name, a.NetnsIfname, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s up: %w", a.NetnsIfname, err)
	}
	return nil
}

// rebind unbinds the VF's driver and binds it again, then waits for the
// VF's netdev to appear in the host namespace and returns its name.
func (v VMs) rebind(ctx context.Context, vf vfmgr.VFRef) (string, error) {
	dev := filepath.Join(v.sysfs(), "class", "net", vf.PF, "device", "virtfn"+strconv.Itoa(vf.Index))
	target, err := os.Readlink(dev)
	if err != nil {
		return "", fmt.Errorf("PCI address of %s: %w", vf, err)
	}
	pci := filepath.Base(target)
	drvLink, err := os.Readlink(filepath.Join(dev, "driver"))
	switch {
	case err == nil:
		drv := filepath.Join(v.sysfs(), "bus", "pci", "drivers", filepath.Base(drvLink))
		if err := os.WriteFile(filepath.Join(drv, "unbind"), []byte(pci), 0o200); err != nil {
			return "", fmt.Errorf("unbind %s (%s) from %s: %w", vf, pci, filepath.Base(drv), err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("driver of %s (%s): %w", vf, pci, err)
	}
	// Unbound now (or already, e.g. after a crash between unbind and bind):
	// let the kernel probe the VF's driver, as for a hot-plugged device.
	if err := os.WriteFile(filepath.Join(v.sysfs(), "bus", "pci", "drivers_probe"), []byte(pci), 0o200); err != nil {
		return "", fmt.Errorf("probe a driver for %s (%s): %w", vf, pci, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if name, err := v.HostNetdev(vf); err == nil && name != "" {
			return name, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s (%s): no netdev 5 s after probing its driver", vf, pci)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// unplugPrefix starts the name an unplugged VF netdev gets before it
// leaves the VM ("vfl" and its ifindex).
const unplugPrefix = "vfl"

// Unplug takes the VM's interface back to the host namespace, down and
// under a name of its own (unplugPrefix and its ifindex). It also takes
// back any netdev an earlier, interrupted Unplug left in the VM under that
// name (renamed but not yet moved when vflagd died): left there, it keeps
// the VM's address on a dead port. A VM without either is not an error.
func (v VMs) Unplug(_ context.Context, a vfmgr.Allocation) error {
	h, err := v.vmHandle(a)
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := netlinksafe.New(h).LinkList()
	if err != nil {
		return fmt.Errorf("unplug from VM %s: %w", a.VM, err)
	}
	host, err := netns.Get()
	if err != nil {
		return fmt.Errorf("unplug from VM %s: host namespace: %w", a.VM, err)
	}
	defer host.Close()
	for _, l := range links {
		name := l.Attrs().Name
		if name != a.NetnsIfname && !strings.HasPrefix(name, unplugPrefix) {
			continue
		}
		if err := h.LinkSetDown(l); err != nil {
			return fmt.Errorf("unplug %s from VM %s: down: %w", name, a.VM, err)
		}
		if !strings.HasPrefix(name, unplugPrefix) {
			if err := h.LinkSetName(l, unplugPrefix+strconv.Itoa(l.Attrs().Index)); err != nil {
				return fmt.Errorf("unplug %s from VM %s: rename: %w", name, a.VM, err)
			}
		}
		if err := h.LinkSetNsFd(l, int(host)); err != nil {
			return fmt.Errorf("unplug %s from VM %s: move to host: %w", name, a.VM, err)
		}
	}
	return nil
}

// Addrs returns the addresses the VM has on its interface (global and
// link-local), for announcements.
func (v VMs) Addrs(_ context.Context, a vfmgr.Allocation) ([]netip.Addr, error) {
	h, err := v.vmHandle(a)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	nh := netlinksafe.New(h)
	l, err := nh.LinkByName(a.NetnsIfname)
	if err != nil {
		return nil, fmt.Errorf("addresses of VM %s: %w", a.VM, err)
	}
	list, err := nh.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of VM %s: %w", a.VM, err)
	}
	var out []netip.Addr
	for _, ad := range list {
		if ip, ok := netip.AddrFromSlice(ad.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}
