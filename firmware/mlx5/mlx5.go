package mlx5

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vflag/vflag/firmware"
	"github.com/vflag/vflag/firmware/generic"
	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// Version is the backend's version (plugin.Info.Version).
const Version = "0.1.0"

// Driver is the PF (and VF) driver this backend serves.
const Driver = "mlx5_core"

// MaxVFsPerPF is the most VFs per PF vflag uses in hardware mode.
const MaxVFsPerPF = 64

// DefaultLAGWait is how long PrepareBond waits for the LAG to become
// active after switching the eswitch mode.
const DefaultLAGWait = 10 * time.Second

// Backend is the mlx5 backend. The zero value works on the host.
type Backend struct {
	// Device is the host as the backend sees it; nil means the running
	// kernel.
	Device nicview.Device
	// LAGWait bounds PrepareBond's wait for the LAG (0: DefaultLAGWait).
	LAGWait time.Duration
}

var _ plugin.Backend = (*Backend)(nil)

// New returns the mlx5 backend over dev (nil: the running kernel).
func New(dev nicview.Device) *Backend { return &Backend{Device: dev} }

func (b *Backend) dev() nicview.Device {
	if b.Device == nil {
		return &nicview.Host{}
	}
	return b.Device
}

func (b *Backend) sw() *generic.Backend { return generic.New(b.dev()) }

// Info implements plugin.Backend.
func (b *Backend) Info(context.Context) (plugin.Info, error) {
	return plugin.Info{Name: firmware.MLX5, Version: Version, Drivers: []string{Driver}}, nil
}

// Probe implements plugin.Backend. HardwareFollow says whether these two
// ports can carry every VF across a failover once prepared: both
// mlx5_core, one card, vfs_per_pf within MaxVFsPerPF. HardwarePorts are
// both ports.
func (b *Backend) Probe(ctx context.Context, spec plugin.BondSpec) (plugin.Capabilities, error) {
	if err := firmware.CheckSpec(spec); err != nil {
		return plugin.Capabilities{}, fmt.Errorf("probe: %w", err)
	}
	ports, err := b.sw().Ports(ctx, spec)
	if err != nil {
		return plugin.Capabilities{}, fmt.Errorf("probe bond %s: %w", spec.Bond, err)
	}
	caps := plugin.Capabilities{Backend: firmware.MLX5, Ports: ports, MaxVFsPerPF: MaxVFsPerPF}
	if blockers := firmware.Failing(b.capability(ctx, spec)); len(blockers) > 0 {
		caps.Reason = firmware.Reason(blockers)
		return caps, nil
	}
	caps.HardwareFollow = true
	caps.HardwarePorts = []string{spec.Ports[0], spec.Ports[1]}
	return caps, nil
}

// capability checks what no preparation changes.
func (b *Backend) capability(ctx context.Context, spec plugin.BondSpec) []plugin.Finding {
	var fs []plugin.Finding
	pfs := make([]vfmgr.PF, 0, 2)
	for _, name := range spec.Ports {
		pf, err := b.dev().PF(ctx, name)
		if err != nil {
			fs = append(fs, plugin.Finding{
				Check: "port", Subject: name, Severity: plugin.SeverityFail, Detail: err.Error(),
				Fix: "name an existing mlx5_core PF in the ports of " + spec.Bond,
			})
			continue
		}
		pfs = append(pfs, pf)
		if pf.Driver != Driver {
			fs = append(fs, plugin.Finding{
				Check: "driver", Subject: name, Severity: plugin.SeverityFail,
				Detail: fmt.Sprintf("%s (%s) is driven by %s, not mlx5_core: no mlx5 VF-LAG", name, pf.PCI, orNone(pf.Driver)),
				Fix:    fmt.Sprintf("use backend %s for %s", firmware.ForDriver(pf.Driver), spec.Bond),
			})
		}
	}
	if spec.VFsPerPF > MaxVFsPerPF {
		fs = append(fs, plugin.Finding{
			Check: "vf-count", Subject: spec.Bond, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("%d VFs per PF configured; vflag uses mlx5 VF-LAG with at most %d", spec.VFsPerPF, MaxVFsPerPF),
			Fix:    fmt.Sprintf("lower vfs_per_pf of %s to %d, or use mode software", spec.Bond, MaxVFsPerPF),
		})
	}
	if len(pfs) == 2 && pfs[0].Driver == Driver && pfs[1].Driver == Driver {
		fs = append(fs, firmware.SameCard(ctx, b.dev(), "same-card", pfs[0], pfs[1]))
	}
	return fs
}

// LAG is the driver's view of the card's LAG (debugfs lag/).
type LAG struct {
	// State is "active" or "disabled".
	State string
	// Type is "switchdev" for VF-LAG ("roce", "multipath", ...); "" while
	// the LAG is not active.
	Type string
	// Mapping is the lines of lag/mapping ("1:2"), nil while not active.
	Mapping []string
}

// ErrNoDebugfs: the mlx5 LAG debugfs is not there (debugfs not mounted,
// or a kernel older than 5.19).
var ErrNoDebugfs = errors.New("mlx5 LAG debugfs not readable")

// ReadLAG reads the LAG state from debugfs under the sysfs root, for the
// PF at pci.
func ReadLAG(root, pci string) (LAG, error) {
	dir := filepath.Join("kernel", "debug", "mlx5", pci, "lag")
	state, err := nicview.ReadFile(root, filepath.Join(dir, "state"))
	if errors.Is(err, fs.ErrNotExist) {
		return LAG{}, fmt.Errorf("%s: %w (mount -t debugfs none /sys/kernel/debug)", filepath.Join("/sys", dir), ErrNoDebugfs)
	}
	if err != nil {
		return LAG{}, err
	}
	l := LAG{State: state}
	if state != "active" {
		return l, nil
	}
	// type and mapping answer EINVAL while the LAG is not active.
	if l.Type, err = nicview.ReadFile(root, filepath.Join(dir, "type")); err != nil {
		return LAG{}, err
	}
	m, err := nicview.ReadFile(root, filepath.Join(dir, "mapping"))
	if err != nil {
		return LAG{}, err
	}
	l.Mapping = strings.Fields(m)
	return l, nil
}

// pointsAt reports whether every logical port of the mapping goes to
// physical port want (queue affinity: "1:2 2:2"; hash: "2").
func (l LAG) pointsAt(want int) bool {
	if len(l.Mapping) == 0 {
		return false
	}
	w := strconv.Itoa(want)
	for _, line := range l.Mapping {
		phys := line
		if _, p, ok := strings.Cut(line, ":"); ok {
			phys = p
		}
		if phys != w {
			return false
		}
	}
	return true
}

// physPort is the card's physical port of a PF: its PCI function + 1.
func physPort(pci string) (int, error) {
	a, err := nicview.ParsePCI(pci)
	if err != nil {
		return 0, err
	}
	return a.Function + 1, nil
}

// Preflight implements plugin.Backend: the generic checks and, in
// hardware mode, the capability and VF-LAG state (switchdev on both
// PFs, the LAG active, the VFs' drivers).
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

func (b *Backend) state(ctx context.Context, spec plugin.BondSpec) []plugin.Finding {
	var fs []plugin.Finding
	modes := map[string]nicview.EswitchMode{}
	for _, name := range spec.Ports {
		pf, err := b.dev().PF(ctx, name)
		if err != nil {
			continue // the capability checks report it
		}
		dl, err := b.dev().Devlink(ctx, pf.PCI)
		if err != nil {
			fs = append(fs, plugin.Finding{Check: "eswitch-mode", Subject: name, Severity: plugin.SeverityFail, Detail: err.Error()})
			continue
		}
		modes[name] = dl.Eswitch
		if dl.Eswitch != nicview.EswitchSwitchdev {
			fs = append(fs, plugin.Finding{
				Check: "eswitch-mode", Subject: name, Severity: plugin.SeverityFail,
				Detail: fmt.Sprintf("%s (%s) is in %s mode; mlx5 VF-LAG needs both PFs in switchdev", name, pf.PCI, modeName(dl.Eswitch)),
				Fix:    "vflagd's PrepareBond sets it, with the VFs unbound meanwhile",
			})
		} else {
			fs = append(fs, plugin.Finding{Check: "eswitch-mode", Subject: name, Severity: plugin.SeverityOK, Detail: fmt.Sprintf("%s (%s) is in switchdev mode", name, pf.PCI)})
		}
		fs = append(fs, b.vfDriverFindings(ctx, name)...)
	}
	fs = append(fs, b.lagFinding(ctx, spec))
	return fs
}

// vfDriverFindings flags VFs bound to a driver other than mlx5_core: a
// VM holds them (vfio-pci), and PrepareBond cannot unbind them.
func (b *Backend) vfDriverFindings(ctx context.Context, pf string) []plugin.Finding {
	var fs []plugin.Finding
	for _, vf := range b.foreignVFs(ctx, pf) {
		fs = append(fs, plugin.Finding{
			Check: "vf-driver", Subject: vfmgr.VFRef{PF: vf.PF, Index: vf.Index}.String(), Severity: plugin.SeverityWarn,
			Detail: fmt.Sprintf("%s is bound to %s; the LAG must not change state while it is bound", vf.ID(), vf.Netdev),
			Fix:    "stop the VM using it before vflag sets the LAG up",
		})
	}
	return fs
}

// foreignVFs lists pf's VFs bound to a driver other than mlx5_core; the
// driver's name is put in Netdev.
func (b *Backend) foreignVFs(ctx context.Context, pf string) []vfmgr.VF {
	vfs, err := b.dev().VFs(ctx, pf)
	if err != nil {
		return nil
	}
	var out []vfmgr.VF
	for _, vf := range vfs {
		drv := vfDriver(b.dev().Sysfs(), vf.PCI)
		if drv != "" && drv != Driver {
			vf.Netdev = drv
			out = append(out, vf)
		}
	}
	return out
}

// vfDriver is the driver bound to the PCI device pci ("" none).
func vfDriver(root, pci string) string {
	target, err := readlink(filepath.Join(root, "bus", "pci", "devices", pci, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

func (b *Backend) lagFinding(ctx context.Context, spec plugin.BondSpec) plugin.Finding {
	pf, err := b.dev().PF(ctx, spec.Ports[0])
	if err != nil {
		return plugin.Finding{Check: "lag", Subject: spec.Bond, Severity: plugin.SeverityFail, Detail: err.Error()}
	}
	l, err := ReadLAG(b.dev().Sysfs(), pf.PCI)
	switch {
	case errors.Is(err, ErrNoDebugfs):
		return plugin.Finding{
			Check: "lag", Subject: spec.Bond, Severity: plugin.SeverityWarn,
			Detail: "cannot see the mlx5 LAG state: " + err.Error() + "; failovers cannot be verified",
			Fix:    "mount -t debugfs none /sys/kernel/debug",
		}
	case err != nil:
		return plugin.Finding{Check: "lag", Subject: spec.Bond, Severity: plugin.SeverityFail, Detail: err.Error()}
	case l.State != "active":
		return plugin.Finding{
			Check: "lag", Subject: spec.Bond, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("the mlx5 LAG of %s is %s", pf.PCI, l.State),
			Fix:    "vflagd's PrepareBond sets it up (switchdev on both PFs, both enslaved to " + spec.Bond + ")",
		}
	case l.Type != "switchdev":
		return plugin.Finding{
			Check: "lag", Subject: spec.Bond, Severity: plugin.SeverityFail,
			Detail: fmt.Sprintf("the mlx5 LAG of %s is a %s LAG, not a switchdev (VF) LAG", pf.PCI, l.Type),
			Fix:    "vflagd's PrepareBond sets both PFs to switchdev",
		}
	}
	return plugin.Finding{
		Check: "lag", Subject: spec.Bond, Severity: plugin.SeverityOK,
		Detail: fmt.Sprintf("the mlx5 switchdev LAG of %s is active (mapping %s)", pf.PCI, strings.Join(l.Mapping, " ")),
	}
}

func modeName(m nicview.EswitchMode) string {
	if m == nicview.EswitchNone {
		return "no eswitch"
	}
	return string(m)
}

// PrepareBond implements plugin.Backend. Hardware mode: refuse (changing
// nothing) when a capability fails or a VF is bound to a foreign driver;
// create the VFs; then, unless the switchdev LAG is already active, unbind
// every VF of both PFs, set both PFs to switchdev, wait for the LAG, and
// bind the VFs again (also when a step failed). The bond itself is the
// operator's: PrepareBond never changes it.
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
	var foreign []plugin.Finding
	for _, name := range spec.Ports {
		for _, f := range b.vfDriverFindings(ctx, name) {
			f.Severity = plugin.SeverityFail
			foreign = append(foreign, f)
		}
	}
	if len(foreign) > 0 {
		return foreign, nil
	}
	done, err := b.sw().PrepareVFs(ctx, spec, nil)
	if err != nil {
		return done, err
	}
	if len(firmware.Failing(done)) > 0 {
		return done, nil
	}
	if f := b.lagFinding(ctx, spec); f.Severity == plugin.SeverityOK && b.bothSwitchdev(ctx, spec) {
		return append(done, f), nil
	}
	return b.formLAG(ctx, spec, done)
}

func (b *Backend) bothSwitchdev(ctx context.Context, spec plugin.BondSpec) bool {
	for _, name := range spec.Ports {
		pf, err := b.dev().PF(ctx, name)
		if err != nil {
			return false
		}
		if dl, err := b.dev().Devlink(ctx, pf.PCI); err != nil || dl.Eswitch != nicview.EswitchSwitchdev {
			return false
		}
	}
	return true
}

type unbound struct{ pci, driver string }

// formLAG unbinds the VFs, sets switchdev, waits for the LAG and binds the
// VFs again.
func (b *Backend) formLAG(ctx context.Context, spec plugin.BondSpec, done []plugin.Finding) ([]plugin.Finding, error) {
	var released []unbound
	rebind := func() error {
		var errs []error
		for _, u := range released {
			if err := b.dev().Bind(ctx, u.pci, u.driver); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 && len(released) > 0 {
			done = append(done, plugin.Finding{
				Check: "vf-driver", Subject: spec.Bond, Severity: plugin.SeverityOK,
				Detail: fmt.Sprintf("bound %d VFs to %s again", len(released), Driver),
			})
		}
		return errors.Join(errs...)
	}
	fail := func(err error) ([]plugin.Finding, error) {
		if rerr := rebind(); rerr != nil {
			return done, fmt.Errorf("prepare bond %s: %w (and binding the VFs again failed: %w)%s", spec.Bond, err, rerr, doneSoFar(done))
		}
		return done, fmt.Errorf("prepare bond %s: %w%s", spec.Bond, err, doneSoFar(done))
	}
	for _, name := range spec.Ports {
		vfs, err := b.dev().VFs(ctx, name)
		if err != nil {
			return fail(err)
		}
		for _, vf := range vfs {
			drv, err := b.dev().Unbind(ctx, vf.PCI)
			if err != nil {
				return fail(fmt.Errorf("%s: %w", vf.ID(), err))
			}
			if drv != "" {
				released = append(released, unbound{vf.PCI, drv})
			}
		}
	}
	if len(released) > 0 {
		done = append(done, plugin.Finding{
			Check: "vf-driver", Subject: spec.Bond, Severity: plugin.SeverityOK,
			Detail: fmt.Sprintf("unbound %d VFs while the LAG forms", len(released)),
		})
	}
	for _, name := range spec.Ports {
		pf, err := b.dev().PF(ctx, name)
		if err != nil {
			return fail(err)
		}
		dl, err := b.dev().Devlink(ctx, pf.PCI)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		if dl.Eswitch == nicview.EswitchSwitchdev {
			continue
		}
		if err := b.dev().SetEswitchMode(ctx, pf.PCI, nicview.EswitchSwitchdev); err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		done = append(done, plugin.Finding{
			Check: "eswitch-mode", Subject: name, Severity: plugin.SeverityOK,
			Detail: fmt.Sprintf("set %s (%s) to switchdev mode", name, pf.PCI),
		})
	}
	lagF := b.waitLAG(ctx, spec)
	if err := rebind(); err != nil {
		return done, fmt.Errorf("prepare bond %s: bind VFs again: %w%s", spec.Bond, err, doneSoFar(done))
	}
	return append(done, lagF), nil
}

// waitLAG polls the LAG state until it is an active switchdev LAG or
// LAGWait passes, and returns the last finding.
func (b *Backend) waitLAG(ctx context.Context, spec plugin.BondSpec) plugin.Finding {
	wait := b.LAGWait
	if wait == 0 {
		wait = DefaultLAGWait
	}
	deadline := time.Now().Add(wait)
	for {
		f := b.lagFinding(ctx, spec)
		if f.Severity == plugin.SeverityOK || f.Severity == plugin.SeverityWarn || !time.Now().Before(deadline) {
			if f.Severity == plugin.SeverityFail {
				f.Detail += fmt.Sprintf(", %s after both PFs were in switchdev mode (are both enslaved to %s?)", wait, spec.Bond)
			}
			return f
		}
		select {
		case <-ctx.Done():
			f.Detail += ": " + ctx.Err().Error()
			return f
		case <-time.After(100 * time.Millisecond):
		}
	}
}

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

// PlanFailover implements plugin.Backend: while the card's switchdev LAG
// is active every VF follows in hardware; otherwise all take the software
// path. Without debugfs the LAG cannot be seen: then both PFs in
// switchdev mode and enslaved to the bond count as active.
func (b *Backend) PlanFailover(ctx context.Context, req plugin.FailoverRequest) (plugin.FailoverPlan, error) {
	plan := plugin.FailoverPlan{Bond: req.Bond, From: req.From, To: req.To}
	if b.lagNow(ctx, req.Bond) {
		plan.Hardware = append(plan.Hardware, req.VFs...)
	} else {
		plan.Software = append(plan.Software, req.VFs...)
	}
	return plan, nil
}

func (b *Backend) lagNow(ctx context.Context, bondName string) bool {
	bond, err := nicview.ReadBond(b.dev().Sysfs(), bondName)
	if err != nil || len(bond.Slaves) != 2 {
		return false
	}
	spec := plugin.BondSpec{Bond: bondName, Ports: [2]string{bond.Slaves[0], bond.Slaves[1]}, VFsPerPF: 1, Mode: plugin.ModeHardware}
	for _, name := range spec.Ports {
		if pf, err := b.dev().PF(ctx, name); err != nil || pf.Driver != Driver {
			return false
		}
	}
	switch f := b.lagFinding(ctx, spec); f.Severity {
	case plugin.SeverityOK:
		return true
	case plugin.SeverityWarn: // no debugfs
		return b.bothSwitchdev(ctx, spec)
	}
	return false
}

// VerifyFailover implements plugin.Backend: the bond is active on
// plan.To, and the LAG is active with every logical port mapped to
// plan.To's physical port. Without debugfs only the bond can be checked:
// a Warn says the mapping was not seen.
func (b *Backend) VerifyFailover(ctx context.Context, plan plugin.FailoverPlan) ([]plugin.Finding, error) {
	if len(plan.Hardware) == 0 {
		return nil, nil
	}
	failAll := func(problem string) []plugin.Finding {
		fs := make([]plugin.Finding, 0, len(plan.Hardware))
		for _, v := range plan.Hardware {
			fs = append(fs, plugin.Finding{
				Check: "hardware-follow", Subject: v.String(), Severity: plugin.SeverityFail,
				Detail: "mlx5 VF-LAG did not carry it to " + plan.To + ": " + problem,
				Fix:    "vflagd re-homes it in software; see vflag doctor for the bond",
			})
		}
		return fs
	}
	bond, err := nicview.ReadBond(b.dev().Sysfs(), plan.Bond)
	if err != nil {
		return failAll(err.Error()), nil
	}
	if bond.Active != plan.To {
		return failAll(fmt.Sprintf("%s's active port is %q, not %s", plan.Bond, bond.Active, plan.To)), nil
	}
	to, err := b.dev().PF(ctx, plan.To)
	if err != nil {
		return failAll(err.Error()), nil
	}
	want, err := physPort(to.PCI)
	if err != nil {
		return failAll(err.Error()), nil
	}
	l, err := ReadLAG(b.dev().Sysfs(), to.PCI)
	switch {
	case errors.Is(err, ErrNoDebugfs):
		return []plugin.Finding{{
			Check: "hardware-follow", Subject: plan.Bond, Severity: plugin.SeverityWarn,
			Detail: fmt.Sprintf("%s is active on %s, but the LAG's port mapping cannot be seen (%v): %d VFs trusted to the NIC", plan.Bond, plan.To, err, len(plan.Hardware)),
			Fix:    "mount -t debugfs none /sys/kernel/debug",
		}}, nil
	case err != nil:
		return failAll(err.Error()), nil
	case l.State != "active" || l.Type != "switchdev":
		return failAll(fmt.Sprintf("the LAG of %s is %s %s", to.PCI, l.State, l.Type)), nil
	case !l.pointsAt(want):
		return failAll(fmt.Sprintf("the LAG maps its ports as %s, not all to port %d (%s)", strings.Join(l.Mapping, " "), want, plan.To)), nil
	}
	return []plugin.Finding{{
		Check: "hardware-follow", Subject: plan.Bond, Severity: plugin.SeverityOK,
		Detail: fmt.Sprintf("the LAG maps every port to port %d (%s): %d VFs carried by the NIC", want, plan.To, len(plan.Hardware)),
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

func readlink(path string) (string, error) { return os.Readlink(path) }
