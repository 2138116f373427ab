package nicview

import (
	"context"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// View is what a NIC backend reads of the host beyond SR-IOV: sysfs (and
// debugfs under it), devlink, ethtool, DCB and the kernel release. Host
// reads the running kernel; Recording answers from a recorded device.
type View interface {
	// Sysfs is the directory sysfs is mounted on ("/sys" on a host, a
	// materialized tree for a Recording). Bond, Port and the backends read
	// files under it; debugfs is expected at Sysfs/kernel/debug.
	Sysfs() string
	// Devlink answers `devlink dev eswitch show` and `devlink dev info`
	// for the PCI device pci. A device without devlink (igb) gives an
	// error matching ErrNoDevlink.
	Devlink(ctx context.Context, pci string) (Devlink, error)
	// Ethtool answers `ethtool -i` and `ethtool --show-priv-flags` for the
	// netdev ifname.
	Ethtool(ctx context.Context, ifname string) (Ethtool, error)
	// DCB is the netdev's DCB state as dcbnl reports it.
	DCB(ctx context.Context, ifname string) (DCB, error)
	// KernelRelease is the running kernel's release ("6.12.48+deb13-amd64").
	KernelRelease(ctx context.Context) (string, error)
}

// Changer makes the changes a backend's PrepareBond needs. Host changes
// the running kernel; Recording changes its recorded state and logs each
// change as the command that would make it.
type Changer interface {
	// SetEswitchMode is `devlink dev eswitch set pci/PCI mode MODE`.
	SetEswitchMode(ctx context.Context, pci string, mode EswitchMode) error
	// SetPrivFlag is `ethtool --set-priv-flags IFNAME FLAG on|off`.
	SetPrivFlag(ctx context.Context, ifname, flag string, on bool) error
	// Unbind detaches the PCI device pci from its driver
	// (/sys/bus/pci/devices/PCI/driver/unbind) and returns that driver
	// ("" when it had none: then nothing is done).
	Unbind(ctx context.Context, pci string) (string, error)
	// Bind attaches the PCI device pci to driver
	// (/sys/bus/pci/drivers/DRIVER/bind).
	Bind(ctx context.Context, pci, driver string) error
}

// SRIOV is the SR-IOV side of the kernel as the backends use it: exactly
// what vfmgr/sriov's Kernel does. A Recording implements it from its
// recorded VFs.
type SRIOV interface {
	PF(ctx context.Context, name string) (vfmgr.PF, error)
	VFs(ctx context.Context, pf string) ([]vfmgr.VF, error)
	SetNumVFs(ctx context.Context, pf string, n int) error
	ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error
	ResetVF(ctx context.Context, pf string, idx int) error
}

var _ SRIOV = (*sriov.Kernel)(nil)

// Device is everything a backend uses of a host: the view, the changes,
// the SR-IOV side. Host and Recording are Devices.
type Device interface {
	View
	Changer
	SRIOV
}
