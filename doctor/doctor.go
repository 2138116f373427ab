package doctor

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/config"
)

// NIC is what doctor reads about a PF besides sysfs: its driver and
// firmware, its private flags, its devlink eswitch and its VFs' settings.
type NIC interface {
	// DriverInfo is `ethtool -i IFNAME`.
	DriverInfo(ctx context.Context, ifname string) (DriverInfo, error)
	// PrivFlags is `ethtool --show-priv-flags IFNAME`.
	PrivFlags(ctx context.Context, ifname string) (map[string]bool, error)
	// EswitchMode is the mode `devlink dev eswitch show pci/PCI` shows:
	// "legacy" or "switchdev".
	EswitchMode(ctx context.Context, pci string) (string, error)
	// VFs lists the VFs of pf with the settings made through it (MAC,
	// spoofchk, trust), as `ip link show PF` does.
	VFs(ctx context.Context, pf string) ([]vfmgr.VF, error)
}

// DriverInfo is what `ethtool -i` shows.
type DriverInfo struct {
	// Driver is the kernel driver ("ice").
	Driver string
	// Version is the driver's version (in-tree drivers: the kernel's).
	Version string
	// Firmware is the NIC's firmware version ("" when the driver has none).
	Firmware string
	// BusInfo is the PCI address.
	BusInfo string
}

// Runner runs a program and returns what it printed. A program that is not
// installed gives an error matching exec.ErrNotFound.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) (string, error)
}

// Vflagd asks the vflagd listening on socket what it manages.
type Vflagd interface {
	// Probe returns vflagd's state, or an error matching ErrNotRunning
	// (nothing listens on socket) or ErrNoAccess (the socket refuses this
	// user).
	Probe(ctx context.Context, socket string) (DaemonState, error)
}

// Errors of Vflagd.Probe.
var (
	// ErrNotRunning: no vflagd answers on the socket.
	ErrNotRunning = errors.New("vflagd is not running")
	// ErrNoAccess: vflagd refused this user.
	ErrNoAccess = errors.New("no access to vflagd")
)

// DaemonState is what a running vflagd says about itself.
type DaemonState struct {
	// Bonds are the bonds it manages.
	Bonds []DaemonBond
	// InUse are the VFs it has handed to VMs.
	InUse []InUseVF
}

// DaemonBond is a bond vflagd manages.
type DaemonBond struct {
	// Name is the bond; Active its active port ("" when none).
	Name, Active string
}

// InUseVF is a VF vflagd has handed to a VM interface.
type InUseVF struct {
	// VF is the VF.
	VF vfmgr.VFRef
	// VM is the VM holding it.
	VM string
	// Trust says whether the VM asked for trust on.
	Trust bool
}

// Preflighter asks the NIC backend (firmware/generic, ice, mlx5, run as a
// plugin) for its own findings on a bond: what only it knows (the ice-lag
// DDP package, both ports on one NIC, firmware capabilities). backend is
// the one the configuration resolves to for the bond ("generic", "ice",
// "mlx5"); spec.Mode follows from it.
type Preflighter interface {
	Preflight(ctx context.Context, backend string, spec plugin.BondSpec) ([]plugin.Finding, error)
}

// PreflightFunc makes a function a Preflighter.
type PreflightFunc func(ctx context.Context, backend string, spec plugin.BondSpec) ([]plugin.Finding, error)

// Preflight calls f.
func (f PreflightFunc) Preflight(ctx context.Context, backend string, spec plugin.BondSpec) ([]plugin.Finding, error) {
	return f(ctx, backend, spec)
}

// Doctor checks a host. Every field but Root is required, except
// Preflight.
type Doctor struct {
	// Root is where the host's file system is: /sys, /proc, /etc and
	// /lib/modules are read below it. "" means "/".
	Root string
	// NIC reads drivers, firmware, eswitch modes and VF settings.
	NIC NIC
	// Run runs programs for their versions (libvirtd --version).
	Run Runner
	// Vflagd asks the running vflagd.
	Vflagd Vflagd
	// RDMA is the netlink side rdmamgr needs (RDMA devices, bond
	// addresses); the sysfs side is read under Root.
	RDMA rdmamgr.LinkAPI
	// Preflight gives the NIC backends' findings; nil skips them (and says
	// so in an info finding).
	Preflight Preflighter
}

// Options say what to check.
type Options struct {
	// Config is vflagd's configuration file ("" means
	// config.DefaultPath). It is read below Root when absolute.
	Config string
	// Socket overrides the configuration's api.socket.
	Socket string
}

// Section names of a Report besides the bonds'.
const (
	SectionConfig = "config"
	SectionHost   = "host"
)

// Check runs every check and returns the findings, grouped: config, host,
// then one section per configured bond.
func (d *Doctor) Check(ctx context.Context, opts Options) Report {
	path := opts.Config
	if path == "" {
		path = config.DefaultPath
	}
	r := Report{Config: path}
	cfg, cfgFindings := d.checkConfig(path)
	r.add(SectionConfig, cfgFindings...)

	var bonds []bondView
	if cfg != nil {
		for i, b := range cfg.Bonds {
			bonds = append(bonds, d.viewBond(ctx, cfg, i, b))
		}
	}
	socket := config.Default().API.Socket
	if cfg != nil {
		socket = cfg.API.Socket
	}
	if opts.Socket != "" {
		socket = opts.Socket
	}

	daemon, daemonErr := d.Vflagd.Probe(ctx, socket)
	r.add(SectionHost, d.checkKernel(bonds)...)
	r.add(SectionHost, d.checkModules(bonds)...)
	r.add(SectionHost, d.checkIOMMU())
	r.add(SectionHost, d.checkLibvirt(ctx)...)
	r.add(SectionHost, d.checkHook())
	r.add(SectionHost, checkVflagd(socket, cfg, daemon, daemonErr)...)

	for _, b := range bonds {
		var inUse []InUseVF
		if daemonErr == nil {
			inUse = daemon.InUse
		}
		r.add(b.cfg.Name, d.checkBond(ctx, b, inUse, daemonErr == nil)...)
	}
	return r
}

// path is p on the host below Root.
func (d *Doctor) path(p string) string {
	if d.Root == "" || d.Root == "/" || !filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.Root, p)
}

// finding builds a Finding.
func finding(check, subject string, sev plugin.Severity, detail, fix string) plugin.Finding {
	return plugin.Finding{Check: check, Subject: subject, Severity: sev, Detail: detail, Fix: fix}
}

func ok(check, subject, detail string) plugin.Finding {
	return finding(check, subject, plugin.SeverityOK, detail, "")
}
