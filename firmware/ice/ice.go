package ice

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vflag/vflag/firmware"
	"github.com/vflag/vflag/firmware/generic"
	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// Version is the backend's version (plugin.Info.Version).
const Version = "0.1.0"

// Driver is the PF driver this backend serves.
const Driver = "ice"

// LLDPFlag is ice's ethtool private flag for the firmware LLDP agent.
const LLDPFlag = "fw-lldp-agent"

// The oldest kernel and NVM that carry an active-backup VF-LAG.
const (
	minKernelMajor, minKernelMinor = 6, 6
	minNVMMajor, minNVMMinor       = 4, 30
)

// Backend is the ice backend. The zero value works on the host.
type Backend struct {
	// Device is the host as the backend sees it; nil means the running
	// kernel.
	Device nicview.Device
}

var _ plugin.Backend = (*Backend)(nil)

// New returns the ice backend over dev (nil: the running kernel).
func New(dev nicview.Device) *Backend { return &Backend{Device: dev} }

func (b *Backend) dev() nicview.Device {
	if b.Device == nil {
		return &nicview.Host{}
	}
	return b.Device
}

// sw is the software path: the generic backend over the same device.
func (b *Backend) sw() *generic.Backend { return generic.New(b.dev()) }

// Info implements plugin.Backend.
func (b *Backend) Info(context.Context) (plugin.Info, error) {
	return plugin.Info{Name: firmware.ICE, Version: Version, Drivers: []string{Driver}}, nil
}

// Probe implements plugin.Backend. HardwareFollow says whether these two
// ports, on this kernel and NVM, can carry the primary's VFs across a
// failover once prepared (PrepareBond); the state that PrepareBond sets or
// the operator must fix (eswitch mode, LLDP agent, enslave order) is for
// Preflight. HardwarePorts is the primary alone.
func (b *Backend) Probe(ctx context.Context, spec plugin.BondSpec) (plugin.Capabilities, error) {
	if err := firmware.CheckSpec(spec); err != nil {
		return plugin.Capabilities{}, fmt.Errorf("probe: %w", err)
	}
	ports, err := b.sw().Ports(ctx, spec)
	if err != nil {
		return plugin.Capabilities{}, fmt.Errorf("probe bond %s: %w", spec.Bond, err)
	}
	caps := plugin.Capabilities{Backend: firmware.ICE, Ports: ports}
	if blockers := firmware.Failing(b.capability(ctx, spec)); len(blockers) > 0 {
		caps.Reason = firmware.Reason(blockers)
		return caps, nil
	}
	caps.HardwareFollow = true
	caps.HardwarePorts = []string{spec.Ports[0]}
	return caps, nil
}

// capability checks what no preparation changes: drivers, kernel, one
// card, NVM version.
func (b *Backend) capability(ctx context.Context, spec plugin.BondSpec) []plugin.Finding {
	var fs []plugin.Finding
	pfs := make([]vfmgr.PF, 0, 2)
	for _, name := range spec.Ports {
		pf, err := b.dev().PF(ctx, name)
		if err != nil {
			fs = append(fs, plugin.Finding{
				Check: "port", Subject: name, Severity: plugin.SeverityFail, Detail: err.Error(),
				Fix: "name an existing ice PF in the ports of " + spec.Bond,
			})
			continue
		}
		pfs = append(pfs, pf)
		if pf.Driver != Driver {
			fs = append(fs, plugin.Finding{
				Check: "driver", Subject: name, Severity: plugin.SeverityFail,
				Detail: fmt.Sprintf("%s (%s) is driven by %s, not ice: no ice VF-LAG", name, pf.PCI, orNone(pf.Driver)),
				Fix:    fmt.Sprintf("use backend %s for %s", firmware.ForDriver(pf.Driver), spec.Bond),
			})
			continue
		}
		fs = append(fs, b.nvmFinding(ctx, pf))
	}
	if rel, err := b.dev().KernelRelease(ctx); err != nil {
		fs = append(fs, plugin.Finding{Check: "kernel", Severity: plugin.SeverityFail, Detail: err.Error()})
	} else if ok, err := firmware.KernelAtLeast(rel, minKernelMajor, minKernelMinor); err != nil || !ok {
		detail := fmt.Sprintf("kernel %s is older than 6.6: its ice has no SR-IOV VF-LAG", rel)
		if err != nil {
			detail = err.Error()
		}
		fs = append(fs, plugin.Finding{
			Check: "kernel", Severity: plugin.SeverityFail, Detail: detail,
			Fix: "boot a kernel >= 6.6, or use mode software",
		})
	} else {
		fs = append(fs, plugin.Finding{Check: "kernel", Severity: plugin.SeverityOK, Detail: "kernel " + rel + " has ice SR-IOV VF-LAG (>= 6.6)"})
	}
	if len(pfs) == 2 && pfs[0].Driver == Driver && pfs[1].Driver == Driver {
		fs = append(fs, firmware.SameCard(ctx, b.dev(), "same-card", pfs[0], pfs[1]))
	}
	return fs
}

// nvmFinding checks the NVM version, the first field of ethtool's
// firmware-version on ice ("4.40 0x8001c967 1.3534.0").
func (b *Backend) nvmFinding(ctx context.Context, pf vfmgr.PF) plugin.Finding {
	et, err := b.dev().Ethtool(ctx, pf.Name)
	if err != nil {
		return plugin.Finding{Check: "nvm", Subject: pf.Name, Severity: plugin.SeverityWarn, Detail: "NVM version unknown: " + err.Error()}
	}
	nvm, _, _ := strings.Cut(et.Firmware, " ")
	maj, mnr, ok := majorMinor(nvm)
	switch {
	case !ok:
		return plugin.Finding{
			Check: "nvm", Subject: pf.Name, Severity: plugin.SeverityWarn,
			Detail: fmt.Sprintf("cannot read the NVM version of %s from firmware-version %q; VF-LAG in active-backup needs 4.30 or later", pf.Name, et.Firmware),
		}
	case maj < minNVMMajor || maj == minNVMMajor && mnr < minNVMMinor:
		return plugin.Finding{
			Check: "nvm", Subject: pf.Name, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%s has NVM %s; ice VF-LAG in active-backup needs NVM 4.30 or later", pf.Name, nvm),
			Fix:    "update the E810's NVM with Intel's NVM update tool",
		}
	}
	return plugin.Finding{Check: "nvm", Subject: pf.Name, Severity: plugin.SeverityOK, Detail: fmt.Sprintf("%s has NVM %s (>= 4.30)", pf.Name, nvm)}
}

// majorMinor parses "4.40" as 4, 40.
func majorMinor(s string) (int, int, bool) {
	a, bs, ok := strings.Cut(s, ".")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.Atoi(a)
	mnr, err2 := strconv.Atoi(bs)
	return maj, mnr, err1 == nil && err2 == nil
}

// Preflight implements plugin.Backend. Software mode: the generic checks,
// and a note of what hardware mode would add. Hardware mode: the generic
// checks (the backup's VFs still take the software path), what the NIC
// can do (Probe) and the VF-LAG state the driver checks (see doc.go).
func (b *Backend) Preflight(ctx context.Context, spec plugin.BondSpec) ([]plugin.Finding, error) {
	if err := firmware.CheckSpec(spec); err != nil {
		return nil, fmt.Errorf("preflight: %w", err)
	}
	fs := b.sw().Findings(ctx, spec)
	if spec.Mode == plugin.ModeSoftware {
		return fs, ctx.Err()
	}
	fs = append(fs, b.capability(ctx, spec)...)
	fs = append(fs, b.state(ctx, spec)...)
	return fs, ctx.Err()
}

// state checks what VF-LAG needs of the ports' current setup: the
// primary in switchdev mode (and, if not, whether that can still be set),
// the LLDP agent off, matching DCB, the bond's membership and enslave
// order, the DDP package.
func (b *Backend) state(ctx context.Context, spec plugin.BondSpec) []plugin.Finding {
	primary, backup := spec.Ports[0], spec.Ports[1]
	var fs []plugin.Finding
	if f, ok := b.eswitchFinding(ctx, primary); ok {
		fs = append(fs, f)
	}
	for _, name := range spec.Ports {
		fs = append(fs, b.lldpFinding(ctx, name))
	}
	fs = append(fs, b.dcbFinding(ctx, primary, backup))
	fs = append(fs, b.orderFindings(spec)...)
	fs = append(fs, b.ddpFinding(ctx, primary))
	return fs
}

// eswitchFinding checks the primary's eswitch mode. ok is false when the
// port cannot be read (the capability checks report it).
func (b *Backend) eswitchFinding(ctx context.Context, primary string) (plugin.Finding, bool) {
	pf, err := b.dev().PF(ctx, primary)
	if err != nil {
		return plugin.Finding{}, false
	}
	dl, err := b.dev().Devlink(ctx, pf.PCI)
	if err != nil {
		f := plugin.Finding{
			Check: "eswitch-mode", Subject: primary, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("primary %s (%s) has no switchdev mode to set: %v", primary, pf.PCI, err),
		}
		if pf.Driver == Driver {
			f.Fix = "boot a kernel whose ice registers devlink (>= 6.6)"
		}
		return f, true
	}
	switch {
	case dl.Eswitch == nicview.EswitchSwitchdev:
		return plugin.Finding{Check: "eswitch-mode", Subject: primary, Severity: plugin.SeverityOK, Detail: fmt.Sprintf("primary %s (%s) is in switchdev mode", primary, pf.PCI)}, true
	case pf.NumVFs > 0:
		return vfsBeforeSwitchdev(primary, pf, dl.Eswitch), true
	}
	return plugin.Finding{
		Check: "eswitch-mode", Subject: primary, Severity: plugin.SeverityFail,
		Detail: fmt.Sprintf("primary %s (%s) is in %s mode; ice VF-LAG needs switchdev", primary, pf.PCI, modeName(dl.Eswitch)),
		Fix:    fmt.Sprintf("devlink dev eswitch set pci/%s mode switchdev (vflagd's PrepareBond does it)", pf.PCI),
	}, true
}

// vfsBeforeSwitchdev is the finding for a primary that has VFs but is not
// in switchdev mode: ice refuses the change until they are gone.
func vfsBeforeSwitchdev(primary string, pf vfmgr.PF, mode nicview.EswitchMode) plugin.Finding {
	return plugin.Finding{
		Check: "eswitch-mode", Subject: primary, Severity: plugin.SeverityFail,
		Detail: fmt.Sprintf("primary %s (%s) is in %s mode and has %d VFs; ice changes the eswitch mode only while a PF has no VFs, so they must be removed first (ice_eswitch_mode_set)",
			primary, pf.PCI, modeName(mode), pf.NumVFs),
		Fix: fmt.Sprintf("stop what uses them, then echo 0 > /sys/class/net/%s/device/sriov_numvfs && devlink dev eswitch set pci/%s mode switchdev", primary, pf.PCI),
	}
}

func modeName(m nicview.EswitchMode) string {
	if m == nicview.EswitchNone {
		return "no eswitch"
	}
	return string(m)
}

func (b *Backend) lldpFinding(ctx context.Context, name string) plugin.Finding {
	et, err := b.dev().Ethtool(ctx, name)
	if err != nil {
		return plugin.Finding{Check: "lldp-agent", Subject: name, Severity: plugin.SeverityFail, Detail: err.Error()}
	}
	on, ok := et.PrivFlags[LLDPFlag]
	switch {
	case !ok:
		return plugin.Finding{
			Check: "lldp-agent", Subject: name, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%s (driver %s) has no %s private flag", name, orNone(et.Driver), LLDPFlag),
		}
	case on:
		return plugin.Finding{
			Check: "lldp-agent", Subject: name, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%s has the firmware LLDP agent on; ice disables VF-LAG while it is on", name),
			Fix:    fmt.Sprintf("ethtool --set-priv-flags %s %s off (vflagd's PrepareBond does it)", name, LLDPFlag),
		}
	}
	return plugin.Finding{Check: "lldp-agent", Subject: name, Severity: plugin.SeverityOK, Detail: name + " has the firmware LLDP agent off"}
}

// dcbFinding compares the two ports' DCB configuration, which ice
// requires to be identical. A port whose DCB cannot be read is a Warn:
// the driver still compares it.
func (b *Backend) dcbFinding(ctx context.Context, primary, backup string) plugin.Finding {
	subject := primary + "," + backup
	dp, errP := b.dev().DCB(ctx, primary)
	db, errB := b.dev().DCB(ctx, backup)
	if errP != nil || errB != nil {
		return plugin.Finding{
			Check: "dcb", Subject: subject, Severity: plugin.SeverityWarn,
			Detail: fmt.Sprintf("cannot compare the DCB configuration of %s and %s (%v); ice disables VF-LAG when they differ", primary, backup, firstErr(errP, errB)),
			Fix:    fmt.Sprintf("dcb ets show dev %s; dcb ets show dev %s", primary, backup),
		}
	}
	if !slices.Equal(dp.DCBX, db.DCBX) || dp.ETS != db.ETS {
		return plugin.Finding{
			Check: "dcb", Subject: subject, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("DCB differs: %s has dcbx %s, ets %q; %s has dcbx %s, ets %q; ice disables VF-LAG",
				primary, strings.Join(dp.DCBX, ","), dp.ETS, backup, strings.Join(db.DCBX, ","), db.ETS),
			Fix: fmt.Sprintf("configure the same DCB on both ports (dcb ets set dev %s ...)", backup),
		}
	}
	return plugin.Finding{Check: "dcb", Subject: subject, Severity: plugin.SeverityOK, Detail: fmt.Sprintf("%s and %s have the same DCB configuration", primary, backup)}
}

// orderFindings checks the bond's members: two ice ports, the primary
// enslaved first (the driver takes the first port enslaved as the VF-LAG
// primary, ice_lag_changeupper_event).
func (b *Backend) orderFindings(spec plugin.BondSpec) []plugin.Finding {
	bond, err := nicview.ReadBond(b.dev().Sysfs(), spec.Bond)
	if err != nil {
		return nil // the generic checks report it
	}
	primary, backup := spec.Ports[0], spec.Ports[1]
	reenslave := fmt.Sprintf("ip link set %s nomaster; ip link set %s nomaster; ip link set %s master %s; ip link set %s master %s",
		primary, backup, primary, spec.Bond, backup, spec.Bond)
	switch {
	case len(bond.Slaves) > 2:
		return []plugin.Finding{{
			Check: "bond-ports", Subject: spec.Bond, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%s has %d ports (%s); ice VF-LAG allows two", spec.Bond, len(bond.Slaves), strings.Join(bond.Slaves, ", ")),
			Fix:    reenslave,
		}}
	case len(bond.Slaves) == 0 || bond.Slaves[0] != primary:
		first := "none"
		if len(bond.Slaves) > 0 {
			first = bond.Slaves[0]
		}
		return []plugin.Finding{{
			Check: "enslave-order", Subject: spec.Bond, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%s's first port is %s, not %s: ice makes the first port enslaved the VF-LAG primary, whose VFs alone follow a failover", spec.Bond, first, primary),
			Fix:    reenslave,
		}}
	}
	return []plugin.Finding{{
		Check: "enslave-order", Subject: spec.Bond, Severity: plugin.SeverityOK,
		Detail: fmt.Sprintf("%s enslaved %s first: its VFs follow a failover in hardware", spec.Bond, primary),
	}}
}

// ddpFinding reports the DDP package: whether it carries the VF-LAG
// recipe is known to the driver only.
func (b *Backend) ddpFinding(ctx context.Context, primary string) plugin.Finding {
	f := plugin.Finding{Check: "ddp", Subject: primary, Severity: plugin.SeverityInfo}
	pf, err := b.dev().PF(ctx, primary)
	if err != nil {
		f.Detail = err.Error()
		return f
	}
	dl, err := b.dev().Devlink(ctx, pf.PCI)
	if err != nil || dl.Versions["fw.app.name"] == "" {
		f.Detail = "DDP package unknown; ice enables VF-LAG only with a package that has its recipe (the kernel log says when it disables VF-LAG)"
		return f
	}
	f.Detail = fmt.Sprintf("DDP package %s %s loaded; whether it carries the VF-LAG recipe only the driver knows (it logs \"VF LAG disabled\" when not)",
		dl.Versions["fw.app.name"], dl.Versions["fw.app"])
	return f
}

// PrepareBond implements plugin.Backend. Hardware mode, in the order the
// driver needs: the primary to switchdev (only while it has no VFs), the
// LLDP agent off on both ports, then the VFs. It touches nothing when a
// capability check fails, and never changes the bond: an enslave order or
// DCB to fix is a Fail finding with its fix. Changing the eswitch mode or
// LLDP agent of ports already bonded takes effect in the driver only when
// they are enslaved again (a Warn says so).
func (b *Backend) PrepareBond(ctx context.Context, spec plugin.BondSpec) ([]plugin.Finding, error) {
	if err := firmware.CheckSpec(spec); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if spec.Mode == plugin.ModeSoftware {
		return b.sw().PrepareVFs(ctx, spec, nil)
	}
	if blockers := firmware.Failing(b.capability(ctx, spec)); len(blockers) > 0 {
		return blockers, nil
	}
	primary := spec.Ports[0]
	var done []plugin.Finding
	changedBonded := false
	pf, err := b.dev().PF(ctx, primary)
	if err != nil {
		return nil, fmt.Errorf("prepare bond %s: %w (nothing changed before)", spec.Bond, err)
	}
	dl, err := b.dev().Devlink(ctx, pf.PCI)
	if err != nil {
		return nil, fmt.Errorf("prepare bond %s: primary %s: %w (nothing changed before)", spec.Bond, primary, err)
	}
	switchdevOK := true
	switch {
	case dl.Eswitch == nicview.EswitchSwitchdev:
	case pf.NumVFs > 0:
		done = append(done, vfsBeforeSwitchdev(primary, pf, dl.Eswitch))
		switchdevOK = false
	default:
		if err := b.dev().SetEswitchMode(ctx, pf.PCI, nicview.EswitchSwitchdev); err != nil {
			return done, fmt.Errorf("prepare bond %s: primary %s: %w%s", spec.Bond, primary, err, doneSoFar(done))
		}
		changedBonded = changedBonded || pf.Bond == spec.Bond
		done = append(done, plugin.Finding{
			Check: "eswitch-mode", Subject: primary, Severity: plugin.SeverityOK,
			Detail: fmt.Sprintf("set primary %s (%s) to switchdev mode", primary, pf.PCI),
		})
	}
	for _, name := range spec.Ports {
		et, err := b.dev().Ethtool(ctx, name)
		if err != nil {
			return done, fmt.Errorf("prepare bond %s: %w%s", spec.Bond, err, doneSoFar(done))
		}
		if !et.PrivFlags[LLDPFlag] {
			continue
		}
		if err := b.dev().SetPrivFlag(ctx, name, LLDPFlag, false); err != nil {
			return done, fmt.Errorf("prepare bond %s: %w%s", spec.Bond, err, doneSoFar(done))
		}
		if p, err := b.dev().PF(ctx, name); err == nil && p.Bond == spec.Bond {
			changedBonded = true
		}
		done = append(done, plugin.Finding{
			Check: "lldp-agent", Subject: name, Severity: plugin.SeverityOK,
			Detail: "turned the firmware LLDP agent of " + name + " off",
		})
	}
	if switchdevOK {
		if done, err = b.sw().PrepareVFs(ctx, spec, done); err != nil {
			return done, err
		}
	}
	done = append(done, firmware.Failing(append(b.orderFindings(spec), b.dcbFinding(ctx, spec.Ports[0], spec.Ports[1])))...)
	if changedBonded {
		done = append(done, plugin.Finding{
			Check: "re-enslave", Subject: spec.Bond, Severity: plugin.SeverityWarn,
			Detail: fmt.Sprintf("%s's ports were already bonded when their eswitch mode or LLDP agent changed; ice sets VF-LAG up only as ports are enslaved", spec.Bond),
			Fix: fmt.Sprintf("ip link set %[2]s nomaster; ip link set %[3]s nomaster; ip link set %[2]s master %[1]s; ip link set %[3]s master %[1]s",
				spec.Bond, spec.Ports[0], spec.Ports[1]),
		})
	}
	return done, nil
}

// doneSoFar renders what a failed preparation had done before.
func doneSoFar(done []plugin.Finding) string {
	var steps []string
	for _, f := range done {
		if f.Severity == plugin.SeverityOK {
			steps = append(steps, f.Detail)
		}
	}
	if len(steps) == 0 {
		return " (nothing changed before)"
	}
	return "; done before: " + strings.Join(steps, "; ")
}

// PlanFailover implements plugin.Backend: when the bond is set up for
// VF-LAG now (see hardwareNow), the VFs of its primary (the first port
// enslaved) follow in hardware and any other in software; otherwise all
// take the software path.
func (b *Backend) PlanFailover(ctx context.Context, req plugin.FailoverRequest) (plugin.FailoverPlan, error) {
	plan := plugin.FailoverPlan{Bond: req.Bond, From: req.From, To: req.To}
	primary, err := b.hardwareNow(ctx, req.Bond)
	for _, v := range req.VFs {
		if err == nil && v.PF == primary {
			plan.Hardware = append(plan.Hardware, v)
		} else {
			plan.Software = append(plan.Software, v)
		}
	}
	return plan, nil
}

// hardwareNow returns the bond's VF-LAG primary if the driver's checks
// would pass now: two ice ports of one card, the first in switchdev mode,
// LLDP off on both, the same DCB, a kernel >= 6.6. An error says which
// failed.
func (b *Backend) hardwareNow(ctx context.Context, bondName string) (string, error) {
	bond, err := nicview.ReadBond(b.dev().Sysfs(), bondName)
	if err != nil {
		return "", err
	}
	if len(bond.Slaves) != 2 || bond.Mode != "active-backup" {
		return "", fmt.Errorf("bond %s: mode %s with %d ports: no VF-LAG", bondName, bond.Mode, len(bond.Slaves))
	}
	spec := plugin.BondSpec{Bond: bondName, Ports: [2]string{bond.Slaves[0], bond.Slaves[1]}, VFsPerPF: 1, Mode: plugin.ModeHardware}
	fs := append(b.capability(ctx, spec), b.state(ctx, spec)...)
	// The DCB finding is a Warn when DCB cannot be read: the driver may
	// still accept the bond, and VerifyFailover checks the outcome.
	if bad := firmware.Failing(fs); len(bad) > 0 {
		return "", fmt.Errorf("bond %s: %s", bondName, firmware.Reason(bad))
	}
	return bond.Slaves[0], nil
}

// VerifyFailover implements plugin.Backend: after the switch, the bond's
// active port must be plan.To and the VF-LAG preconditions must still
// hold (hardwareNow); otherwise each Hardware VF gets a Fail finding and
// vflagd re-homes it. What it cannot see — the VF's queues on the new
// port — an Info finding says.
func (b *Backend) VerifyFailover(ctx context.Context, plan plugin.FailoverPlan) ([]plugin.Finding, error) {
	if len(plan.Hardware) == 0 {
		return nil, nil
	}
	bond, err := nicview.ReadBond(b.dev().Sysfs(), plan.Bond)
	var problem string
	switch {
	case err != nil:
		problem = err.Error()
	case bond.Active != plan.To:
		problem = fmt.Sprintf("%s's active port is %q, not %s", plan.Bond, bond.Active, plan.To)
	default:
		if _, err := b.hardwareNow(ctx, plan.Bond); err != nil {
			problem = err.Error()
		}
	}
	if problem != "" {
		fs := make([]plugin.Finding, 0, len(plan.Hardware))
		for _, v := range plan.Hardware {
			fs = append(fs, plugin.Finding{
				Check: "hardware-follow", Subject: v.String(), Severity: plugin.SeverityFail,
				Detail: "ice VF-LAG cannot have carried it to " + plan.To + ": " + problem,
				Fix:    "vflagd re-homes it in software; see vflag doctor for the bond",
			})
		}
		return fs, nil
	}
	return []plugin.Finding{{
		Check: "hardware-follow", Subject: plan.Bond, Severity: plugin.SeverityInfo,
		Detail: fmt.Sprintf("%s is active on %s and the VF-LAG preconditions hold; ice does not show the VFs' queues moving, so %d VFs are trusted to the driver",
			plan.Bond, plan.To, len(plan.Hardware)),
	}}, nil
}

// PF implements plugin.Backend (vfmgr/sriov).
func (b *Backend) PF(ctx context.Context, name string) (vfmgr.PF, error) { return b.sw().PF(ctx, name) }

// VFs implements plugin.Backend (vfmgr/sriov).
func (b *Backend) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	return b.sw().VFs(ctx, pf)
}

// SetNumVFs implements plugin.Backend (vfmgr/sriov).
func (b *Backend) SetNumVFs(ctx context.Context, pf string, n int) error {
	return b.sw().SetNumVFs(ctx, pf, n)
}

// ConfigureVF implements plugin.Backend (vfmgr/sriov).
func (b *Backend) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	return b.sw().ConfigureVF(ctx, pf, idx, cfg)
}

// ReleaseVF implements plugin.Backend (as the generic backend).
func (b *Backend) ReleaseVF(ctx context.Context, pf string, idx int) error {
	return b.sw().ReleaseVF(ctx, pf, idx)
}

func orNone(s string) string {
	if s == "" {
		return "no driver"
	}
	return s
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
