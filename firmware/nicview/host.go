package nicview

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// Host is the running kernel: sysfs under SysfsRoot, devlink and DCB over
// netlink, ethtool over its ioctl, SR-IOV through vfmgr/sriov. The zero
// value works on the host (/sys, the calling thread's network namespace).
type Host struct {
	// SysfsRoot is where sysfs is mounted; "" means "/sys".
	SysfsRoot string
	// Handle is the netlink handle for devlink and dcbnl; nil means
	// netlink's default handle.
	Handle *netlink.Handle
}

var _ Device = (*Host)(nil)

// kernel is vfmgr/sriov over the same sysfs and netlink handle.
func (h *Host) kernel() *sriov.Kernel { return &sriov.Kernel{Sysfs: h.SysfsRoot, Handle: h.Handle} }

// PF implements SRIOV (sriov.Kernel.PF).
func (h *Host) PF(ctx context.Context, name string) (vfmgr.PF, error) {
	return h.kernel().PF(ctx, name)
}

// VFs implements SRIOV (sriov.Kernel.VFs).
func (h *Host) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	return h.kernel().VFs(ctx, pf)
}

// SetNumVFs implements SRIOV (sriov.Kernel.SetNumVFs).
func (h *Host) SetNumVFs(ctx context.Context, pf string, n int) error {
	return h.kernel().SetNumVFs(ctx, pf, n)
}

// ConfigureVF implements SRIOV (sriov.Kernel.ConfigureVF).
func (h *Host) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	return h.kernel().ConfigureVF(ctx, pf, idx, cfg)
}

// ResetVF implements SRIOV (sriov.Kernel.ResetVF).
func (h *Host) ResetVF(ctx context.Context, pf string, idx int) error {
	return h.kernel().ResetVF(ctx, pf, idx)
}

// Sysfs implements View.
func (h *Host) Sysfs() string {
	if h.SysfsRoot == "" {
		return "/sys"
	}
	return h.SysfsRoot
}

func (h *Host) nl() *netlink.Handle {
	if h.Handle != nil {
		return h.Handle
	}
	return &netlink.Handle{}
}

// Devlink implements View over the devlink generic netlink family.
func (h *Host) Devlink(ctx context.Context, pci string) (Devlink, error) {
	if err := ctx.Err(); err != nil {
		return Devlink{}, fmt.Errorf("devlink pci/%s: %w", pci, err)
	}
	dev, err := h.nl().DevLinkGetDeviceByName("pci", pci)
	if err != nil {
		return Devlink{}, devlinkErr(pci, "show", err)
	}
	d := Devlink{Eswitch: EswitchMode(dev.Attrs.Eswitch.Mode)}
	if d.Eswitch == "unknown" {
		d.Eswitch = EswitchNone
	}
	// `devlink dev info` is optional for a driver (no info_get): then the
	// serial number and versions stay unknown.
	info, err := h.nl().DevlinkGetDeviceInfoByNameAsMap("pci", pci, nil)
	if err != nil {
		return d, nil
	}
	d.Driver, d.Serial = info["driver"], info["serialNumber"]
	delete(info, "driver")
	delete(info, "serialNumber")
	d.Versions = info
	return d, nil
}

// devlinkErr names the device and maps "no such device" answers to
// ErrNoDevlink: the kernel answers ENODEV for a PCI device that has no
// devlink instance and the genetlink family lookup fails with ENOENT when
// the kernel has no devlink at all.
func devlinkErr(pci, op string, err error) error {
	if errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.EOPNOTSUPP) || strings.Contains(err.Error(), "invalid family") {
		return fmt.Errorf("devlink dev %s pci/%s: %w: %w", op, pci, ErrNoDevlink, err)
	}
	return fmt.Errorf("devlink dev %s pci/%s: %w", op, pci, err)
}

// SetEswitchMode implements Changer.
func (h *Host) SetEswitchMode(ctx context.Context, pci string, mode EswitchMode) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("devlink dev eswitch set pci/%s mode %s: %w", pci, mode, err)
	}
	dev := &netlink.DevlinkDevice{BusName: "pci", DeviceName: pci}
	if err := h.nl().DevLinkSetEswitchMode(dev, string(mode)); err != nil {
		return fmt.Errorf("devlink dev eswitch set pci/%s mode %s: %w", pci, mode, err)
	}
	return nil
}

// Ethtool implements View over the ethtool ioctl.
func (h *Host) Ethtool(ctx context.Context, ifname string) (Ethtool, error) {
	if err := ctx.Err(); err != nil {
		return Ethtool{}, fmt.Errorf("ethtool -i %s: %w", ifname, err)
	}
	et, err := ethtool.NewEthtool()
	if err != nil {
		return Ethtool{}, fmt.Errorf("ethtool -i %s: %w", ifname, err)
	}
	defer et.Close()
	di, err := et.DriverInfo(ifname)
	if err != nil {
		return Ethtool{}, fmt.Errorf("ethtool -i %s: %w", ifname, err)
	}
	e := Ethtool{Driver: di.Driver, Version: di.Version, Firmware: di.FwVersion, BusInfo: di.BusInfo}
	if di.NPrivFlags > 0 {
		if e.PrivFlags, err = et.PrivFlags(ifname); err != nil {
			return Ethtool{}, fmt.Errorf("ethtool --show-priv-flags %s: %w", ifname, err)
		}
	}
	return e, nil
}

// SetPrivFlag implements Changer.
func (h *Host) SetPrivFlag(ctx context.Context, ifname, flag string, on bool) error {
	cmd := fmt.Sprintf("ethtool --set-priv-flags %s %s %s", ifname, flag, onOff(on))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	et, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	defer et.Close()
	if err := et.UpdatePrivFlags(ifname, map[string]bool{flag: on}); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return nil
}

// DCB implements View. Not read yet: dcbnl is not wrapped by the netlink
// library; every answer is ErrNoDCB.
func (h *Host) DCB(_ context.Context, ifname string) (DCB, error) {
	return DCB{}, fmt.Errorf("dcb show dev %s: %w", ifname, ErrNoDCB)
}

// KernelRelease implements View (uname -r).
func (h *Host) KernelRelease(context.Context) (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// Unbind implements Changer.
func (h *Host) Unbind(ctx context.Context, pci string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("unbind %s: %w", pci, err)
	}
	dev := filepath.Join(h.Sysfs(), "bus", "pci", "devices", pci)
	target, err := os.Readlink(filepath.Join(dev, "driver"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("unbind %s: %w", pci, err)
	}
	drv := filepath.Base(target)
	if err := writeAttr(filepath.Join(dev, "driver", "unbind"), pci); err != nil {
		return "", fmt.Errorf("unbind %s from %s: %w", pci, drv, err)
	}
	return drv, nil
}

// Bind implements Changer.
func (h *Host) Bind(ctx context.Context, pci, driver string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bind %s to %s: %w", pci, driver, err)
	}
	if err := writeAttr(filepath.Join(h.Sysfs(), "bus", "pci", "drivers", driver, "bind"), pci); err != nil {
		return fmt.Errorf("bind %s to %s: %w", pci, driver, err)
	}
	return nil
}

// writeAttr writes s to an existing sysfs attribute (never creating it).
func writeAttr(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
