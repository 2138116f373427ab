package generic

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/vflag/vflag/firmware"
	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// Version is the backend's version (plugin.Info.Version).
const Version = "0.1.0"

// Backend is the generic backend. The zero value works on the host.
type Backend struct {
	// Device is the host as the backend sees it; nil means the running
	// kernel (nicview.Host with /sys and the default netlink handle).
	Device nicview.Device
}

var _ plugin.Backend = (*Backend)(nil)

// New returns the generic backend over dev (nil: the running kernel).
func New(dev nicview.Device) *Backend { return &Backend{Device: dev} }

func (b *Backend) dev() nicview.Device {
	if b.Device == nil {
		return &nicview.Host{}
	}
	return b.Device
}

// Info implements plugin.Backend: generic serves any driver.
func (b *Backend) Info(context.Context) (plugin.Info, error) {
	return plugin.Info{Name: firmware.Generic, Version: Version}, nil
}

// Probe implements plugin.Backend: the ports, and no hardware follow.
func (b *Backend) Probe(ctx context.Context, spec plugin.BondSpec) (plugin.Capabilities, error) {
	if err := firmware.CheckSpec(spec); err != nil {
		return plugin.Capabilities{}, fmt.Errorf("probe: %w", err)
	}
	ports, err := b.Ports(ctx, spec)
	if err != nil {
		return plugin.Capabilities{}, fmt.Errorf("probe bond %s: %w", spec.Bond, err)
	}
	return plugin.Capabilities{Backend: firmware.Generic, Ports: ports, Reason: noVFLAG(ports)}, nil
}

// noVFLAG says why the generic backend has no hardware follow, naming the
// drivers.
func noVFLAG(ports []plugin.Port) string {
	var drivers []string
	for _, p := range ports {
		if !slices.Contains(drivers, p.Driver) {
			drivers = append(drivers, p.Driver)
		}
	}
	for _, d := range drivers {
		if be := firmware.ForDriver(d); be != firmware.Generic {
			return fmt.Sprintf("the generic backend does not use %s's VF-LAG (backend %s does): vflag re-homes VFs in software", d, be)
		}
	}
	return fmt.Sprintf("%s has no VF-LAG: vflag re-homes VFs in software", joinAnd(drivers))
}

// Ports describes the bond's two ports, primary first: netdev, PCI
// address, driver, firmware version (from ethtool; "" when it does not
// say) and sriov_totalvfs.
func (b *Backend) Ports(ctx context.Context, spec plugin.BondSpec) ([]plugin.Port, error) {
	out := make([]plugin.Port, 0, len(spec.Ports))
	for _, name := range spec.Ports {
		pf, err := b.dev().PF(ctx, name)
		if err != nil {
			return nil, err
		}
		p := plugin.Port{Name: pf.Name, PCI: pf.PCI, Driver: pf.Driver, TotalVFs: pf.TotalVFs}
		// The firmware version is informative: a driver that answers no
		// ethtool -i leaves it unknown.
		if et, err := b.dev().Ethtool(ctx, name); err == nil {
			p.Firmware = et.Firmware
		}
		out = append(out, p)
	}
	return out, nil
}

// Preflight implements plugin.Backend: software mode's preconditions
// (Findings); hardware mode fails, naming the driver.
func (b *Backend) Preflight(ctx context.Context, spec plugin.BondSpec) ([]plugin.Finding, error) {
	if err := firmware.CheckSpec(spec); err != nil {
		return nil, fmt.Errorf("preflight: %w", err)
	}
	fs := b.Findings(ctx, spec)
	if spec.Mode == plugin.ModeHardware {
		fs = append([]plugin.Finding{b.hardwareRefused(ctx, spec)}, fs...)
	}
	return fs, ctx.Err()
}

func (b *Backend) hardwareRefused(ctx context.Context, spec plugin.BondSpec) plugin.Finding {
	var ports []plugin.Port
	for _, name := range spec.Ports {
		if pf, err := b.dev().PF(ctx, name); err == nil {
			ports = append(ports, plugin.Port{Name: name, Driver: pf.Driver})
		}
	}
	return plugin.Finding{
		Check: "mode", Subject: spec.Bond, Severity: plugin.SeverityFail,
		Detail: "hardware mode asked for, but " + noVFLAG(ports),
		Fix:    "set mode software for " + spec.Bond + " in vflag.yaml",
	}
}

// PrepareBond implements plugin.Backend: create vfs_per_pf VFs on a port
// that has none. It never recreates VFs (that destroys VFs in use): a
// port with too few is a Fail finding. Hardware mode is refused.
func (b *Backend) PrepareBond(ctx context.Context, spec plugin.BondSpec) ([]plugin.Finding, error) {
	if err := firmware.CheckSpec(spec); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if spec.Mode == plugin.ModeHardware {
		return []plugin.Finding{b.hardwareRefused(ctx, spec)}, nil
	}
	return b.PrepareVFs(ctx, spec, nil)
}

// PrepareVFs creates spec.VFsPerPF VFs on each port that has none and
// reports each port's VF count as a finding, after the findings done (the
// steps of the caller's own preparation, for the error message). A port
// with VFs, but fewer than VFsPerPF, is a Fail finding: changing a
// non-zero count destroys every VF of the port.
func (b *Backend) PrepareVFs(ctx context.Context, spec plugin.BondSpec, done []plugin.Finding) ([]plugin.Finding, error) {
	out := done
	for _, name := range spec.Ports {
		pf, err := b.dev().PF(ctx, name)
		if err != nil {
			return out, fmt.Errorf("prepare bond %s: %w%s", spec.Bond, err, doneSoFar(out))
		}
		switch {
		case pf.NumVFs == 0:
			if err := b.dev().SetNumVFs(ctx, name, spec.VFsPerPF); err != nil {
				return out, fmt.Errorf("prepare bond %s: create VFs: %w%s", spec.Bond, err, doneSoFar(out))
			}
			out = append(out, plugin.Finding{
				Check: "num-vfs", Subject: name, Severity: plugin.SeverityOK,
				Detail: fmt.Sprintf("created %d VFs on %s (%s)", spec.VFsPerPF, name, pf.PCI),
			})
		case pf.NumVFs < spec.VFsPerPF:
			out = append(out, tooFewVFs(spec, pf))
		default:
			out = append(out, plugin.Finding{
				Check: "num-vfs", Subject: name, Severity: plugin.SeverityOK,
				Detail: fmt.Sprintf("%s (%s) has %d VFs, %d used by vflag", name, pf.PCI, pf.NumVFs, spec.VFsPerPF),
			})
		}
	}
	return out, nil
}

func tooFewVFs(spec plugin.BondSpec, pf vfmgr.PF) plugin.Finding {
	return plugin.Finding{
		Check: "num-vfs", Subject: pf.Name, Severity: plugin.SeverityFail,
		Detail: fmt.Sprintf("%s (%s) has %d VFs, %d configured; vflag will not recreate VFs that may be in use", pf.Name, pf.PCI, pf.NumVFs, spec.VFsPerPF),
		Fix:    fmt.Sprintf("echo 0 > /sys/class/net/%s/device/sriov_numvfs (destroys its VFs), or lower vfs_per_pf of %s to %d", pf.Name, spec.Bond, pf.NumVFs),
	}
}

// doneSoFar renders what a failed preparation had done before, for its
// error: "; done before: created 4 VFs on pf0 (0000:01:00.0)".
func doneSoFar(done []plugin.Finding) string {
	var steps []string
	for _, f := range done {
		if f.Severity == plugin.SeverityOK && f.Detail != "" {
			steps = append(steps, f.Detail)
		}
	}
	if len(steps) == 0 {
		return " (nothing changed before)"
	}
	return "; done before: " + joinSemi(steps)
}

// PF implements plugin.Backend (vfmgr/sriov).
func (b *Backend) PF(ctx context.Context, name string) (vfmgr.PF, error) {
	return b.dev().PF(ctx, name)
}

// VFs implements plugin.Backend (vfmgr/sriov).
func (b *Backend) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	return b.dev().VFs(ctx, pf)
}

// SetNumVFs implements plugin.Backend (vfmgr/sriov).
func (b *Backend) SetNumVFs(ctx context.Context, pf string, n int) error {
	return b.dev().SetNumVFs(ctx, pf, n)
}

// ConfigureVF implements plugin.Backend (vfmgr/sriov).
func (b *Backend) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	return b.dev().ConfigureVF(ctx, pf, idx, cfg)
}

// ReleaseVF implements plugin.Backend: the VF goes back to the settings
// of a free VF (no MAC, VLAN 0, spoof checking on, trust off), as
// sriov.Kernel.ResetVF sets them.
func (b *Backend) ReleaseVF(ctx context.Context, pf string, idx int) error {
	return b.dev().ResetVF(ctx, pf, idx)
}

// PlanFailover implements plugin.Backend: every VF is re-homed in
// software.
func (b *Backend) PlanFailover(_ context.Context, req plugin.FailoverRequest) (plugin.FailoverPlan, error) {
	return plugin.FailoverPlan{Bond: req.Bond, From: req.From, To: req.To, Software: slices.Clone(req.VFs)}, nil
}

// VerifyFailover implements plugin.Backend: the generic backend leaves
// nothing to the hardware, so a plan that does fails for each such VF.
func (b *Backend) VerifyFailover(_ context.Context, plan plugin.FailoverPlan) ([]plugin.Finding, error) {
	var fs []plugin.Finding
	for _, v := range plan.Hardware {
		fs = append(fs, plugin.Finding{
			Check: "hardware-follow", Subject: v.String(), Severity: plugin.SeverityFail,
			Detail: "the generic backend moves no VF in hardware; re-home it in software",
		})
	}
	return fs, nil
}

func isNoSRIOV(err error) bool { return errors.Is(err, sriov.ErrNoSRIOV) }
