package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// NIC backends (package plugin): vflagd runs each bond's backend out of
// process and uses it twice over. As the Kernel seam (BackendKernel),
// every SR-IOV touch of a PF goes to the backend of its bond. As the NIC's
// own voice (Options.NICs), the backend prepares the bond at start and
// says, on a failover, which VFs the NIC carries to the new port by
// itself.

// BackendKernel is the Kernel seam served by NIC backends: each call goes
// to the backend of the PF's bond, and ResetVF is the backend's ReleaseVF.
type BackendKernel struct {
	// ByPF is the backend of each PF.
	ByPF map[string]plugin.Backend
}

var _ Kernel = BackendKernel{}

func (k BackendKernel) of(pf string) (plugin.Backend, error) {
	b, ok := k.ByPF[pf]
	if !ok {
		return nil, fmt.Errorf("PF %s: no backend serves it: %w", pf, vfmgr.ErrNotManaged)
	}
	return b, nil
}

// PF implements Kernel.
func (k BackendKernel) PF(ctx context.Context, name string) (vfmgr.PF, error) {
	b, err := k.of(name)
	if err != nil {
		return vfmgr.PF{}, err
	}
	return b.PF(ctx, name)
}

// VFs implements Kernel.
func (k BackendKernel) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	b, err := k.of(pf)
	if err != nil {
		return nil, err
	}
	return b.VFs(ctx, pf)
}

// SetNumVFs implements Kernel.
func (k BackendKernel) SetNumVFs(ctx context.Context, pf string, n int) error {
	b, err := k.of(pf)
	if err != nil {
		return err
	}
	return b.SetNumVFs(ctx, pf, n)
}

// ConfigureVF implements Kernel.
func (k BackendKernel) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	b, err := k.of(pf)
	if err != nil {
		return err
	}
	return b.ConfigureVF(ctx, pf, idx, cfg)
}

// ResetVF implements Kernel: the backend's ReleaseVF.
func (k BackendKernel) ResetVF(ctx context.Context, pf string, idx int) error {
	b, err := k.of(pf)
	if err != nil {
		return err
	}
	return b.ReleaseVF(ctx, pf, idx)
}

// spec is the BondSpec of a managed bond.
func (b BondConfig) spec() plugin.BondSpec {
	mode := b.Mode
	if mode == "" {
		mode = plugin.ModeSoftware
	}
	return plugin.BondSpec{Bond: b.Name, Ports: b.PFs, VFsPerPF: b.VFsPerPF, Mode: mode}
}

// prepareBonds has each bond's backend put the NIC in the state the bond's
// mode needs and probe what it can do. Each finding is logged; a failing
// one stops start-up, named with its bond. It returns the capabilities by
// bond.
func (d *Daemon) prepareBonds(ctx context.Context) (map[string]plugin.Capabilities, error) {
	caps := map[string]plugin.Capabilities{}
	for _, b := range d.opts.Bonds {
		nic, ok := d.opts.NICs[b.Name]
		if !ok {
			continue
		}
		spec := b.spec()
		fs, err := nic.PrepareBond(ctx, spec)
		log := d.log.With("bond", b.Name, "mode", string(spec.Mode))
		logFindings(log, "prepare", fs)
		if err != nil {
			return nil, fmt.Errorf("bond %s: prepare for %s mode: %w", b.Name, spec.Mode, err)
		}
		var fails []error
		for _, f := range fs {
			if f.Severity >= plugin.SeverityFail {
				fails = append(fails, fmt.Errorf("bond %s: prepare for %s mode: %s", b.Name, spec.Mode, f))
			}
		}
		if len(fails) > 0 {
			return nil, errors.Join(fails...)
		}
		c, err := nic.Probe(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("bond %s: probe: %w", b.Name, err)
		}
		caps[b.Name] = c
		log.Info("NIC backend ready", "backend", c.Backend, "hardware_follow", c.HardwareFollow,
			"hardware_ports", c.HardwarePorts, "reason", c.Reason)
		if spec.Mode == plugin.ModeHardware && !c.HardwareFollow {
			log.Warn("hardware mode asked for, but the NIC does not carry VFs on failover: vflagd re-homes them in software", "reason", c.Reason)
		}
	}
	return caps, nil
}

// logFindings logs each finding at the level its severity calls for.
func logFindings(log *slog.Logger, what string, fs []plugin.Finding) {
	for _, f := range fs {
		level := slog.LevelDebug
		switch f.Severity {
		case plugin.SeverityInfo:
			level = slog.LevelInfo
		case plugin.SeverityWarn:
			level = slog.LevelWarn
		case plugin.SeverityOK:
		default:
			level = slog.LevelError
		}
		log.Log(context.Background(), level, what+": "+f.Check, "subject", f.Subject, "severity", f.Severity.String(), "detail", f.Detail, "fix", f.Fix)
	}
}

// carried splits a plan's moves into those the NIC carries to the new
// port by itself (the VM keeps its VF; vflagd only announces it there)
// and those vflagd re-homes. Only a bond whose backend probed
// HardwareFollow asks its backend (PlanFailover, per pair of ports, then
// VerifyFailover); if any answer is an error, a plan that does not answer
// the request (plugin.CheckPlan) or a failing verification, the whole
// bond's moves go the software way, logged. d.mu is held.
func (d *Daemon) carried(ctx context.Context, pl vfmgr.Plan) (hw, sw []vfmgr.Move) {
	bond := pl.Event.Bond
	nic, ok := d.opts.NICs[bond]
	if !ok || len(pl.Moves) == 0 || !d.caps[bond].HardwareFollow {
		return nil, pl.Moves
	}
	type ports struct{ from, to string }
	var order []ports
	groups := map[ports][]vfmgr.Move{}
	for _, m := range pl.Moves {
		k := ports{m.From.PF, m.To.PF}
		if _, seen := groups[k]; !seen {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	log := d.log.With("bond", bond)
	inHW := map[vfmgr.VFRef]bool{}
	for _, k := range order {
		req := plugin.FailoverRequest{Bond: bond, From: k.from, To: k.to}
		for _, m := range groups[k] {
			req.VFs = append(req.VFs, m.From)
		}
		plan, err := nic.PlanFailover(ctx, req)
		if err == nil {
			err = plugin.CheckPlan(req, plan)
		}
		if err != nil {
			log.Error("backend's failover plan rejected; re-homing the whole bond in software", "from", k.from, "to", k.to, "err", err)
			return nil, pl.Moves
		}
		if len(plan.Hardware) == 0 {
			continue
		}
		fs, err := nic.VerifyFailover(ctx, plan)
		logFindings(log, "verify failover", fs)
		if err != nil || plugin.Worst(fs) >= plugin.SeverityFail {
			log.Error("the NIC did not carry the VFs its backend planned to; re-homing the whole bond in software",
				"from", k.from, "to", k.to, "hardware", len(plan.Hardware), "err", err)
			return nil, pl.Moves
		}
		for _, v := range plan.Hardware {
			inHW[v] = true
		}
	}
	for _, m := range pl.Moves {
		if inHW[m.From] {
			hw = append(hw, m)
			log.Info("VF carried by the NIC; announcing only", "vm", m.VM, "mac", m.MAC.String(), "vf", m.From.String(), "port", m.To.PF)
		} else {
			sw = append(sw, m)
		}
	}
	return hw, sw
}

// carriedPinned asks a hardware-follow bond's backend about the stranded
// interfaces vflagd may not move itself (vfmgr.Mode.Movable is false:
// OpenStack Nova's adopted VFs, libvirt VMs): the ones the NIC carries to
// the other port are announced there and are no longer unplaceable. It
// returns their announcements and the rest of the plan's unplaceable.
// d.mu is held.
func (d *Daemon) carriedPinned(ctx context.Context, pl vfmgr.Plan) ([]vfmgr.Announcement, []vfmgr.Unplaceable) {
	bond := pl.Event.Bond
	b, ok := d.bondConfig(bond)
	if _, nic := d.opts.NICs[bond]; !ok || !nic || !d.caps[bond].HardwareFollow {
		return nil, pl.Unplaceable
	}
	var asked []vfmgr.Move
	allocs := map[string]vfmgr.Allocation{}
	for _, u := range pl.Unplaceable {
		a, ok := d.state.Allocation(u.Key)
		if !ok || a.Mode.Movable(d.opts.Domains != nil) || !u.Stranded {
			continue
		}
		other := b.PFs[0]
		if other == u.VF.PF {
			other = b.PFs[1]
		}
		allocs[u.Key] = a
		// To names only the port: the VM keeps its VF either way.
		asked = append(asked, vfmgr.Move{Key: u.Key, VM: a.VM, MAC: a.MAC, VLAN: a.VLAN, QoS: a.QoS, From: u.VF, To: vfmgr.VFRef{PF: other, Index: -1}})
	}
	if len(asked) == 0 {
		return nil, pl.Unplaceable
	}
	hw, _ := d.carried(ctx, vfmgr.Plan{Event: pl.Event, Moves: asked})
	done := map[string]bool{}
	var anns []vfmgr.Announcement
	for _, m := range hw {
		done[m.Key] = true
		anns = append(anns, vfmgr.Announcement{Key: m.Key, PF: m.To.PF, MAC: m.MAC, VLAN: m.VLAN, QoS: m.QoS, Addrs: allocs[m.Key].Addrs})
	}
	var rest []vfmgr.Unplaceable
	for _, u := range pl.Unplaceable {
		if !done[u.Key] {
			rest = append(rest, u)
		}
	}
	return anns, rest
}

// announcementsOf returns the plan's announcements of the moves' VMs.
func announcementsOf(pl vfmgr.Plan, moves []vfmgr.Move) []vfmgr.Announcement {
	var out []vfmgr.Announcement
	for _, an := range pl.Announce {
		if slices.ContainsFunc(moves, func(m vfmgr.Move) bool { return m.Key == an.Key }) {
			out = append(out, an)
		}
	}
	return out
}

// withAddrs fills in the addresses the VM side reports for the
// announcements of namespace VMs (a moved VM gets them in move). d.mu is
// held.
func (d *Daemon) withAddrs(ctx context.Context, anns []vfmgr.Announcement) []vfmgr.Announcement {
	for i, an := range anns {
		a, ok := d.state.Allocation(an.Key)
		side := d.vmSide(a)
		if !ok || side == nil {
			continue
		}
		if addrs, err := side.Addrs(ctx, a); err == nil && len(addrs) > 0 {
			anns[i].Addrs = addrs
		}
	}
	return anns
}

// Resync re-reads the PF and VF state after a backend process was lost
// and restarted (plugin.Config.OnRestart), without touching running VMs:
// no VF is created, moved or handed to another VM, no VM is unplugged.
// What the lost process may have left half done is put right as at start:
// an allocated VF whose settings disagree with the table gets the VM's
// settings again, and an unallocated VF left with a MAC is released. It
// waits for a failover under way to end.
func (d *Daemon) Resync(ctx context.Context, why string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		return nil // Start reads everything anyway
	}
	d.log.Warn("re-reading PF and VF state", "why", why)
	var errs []error
	for _, b := range d.opts.Bonds {
		for _, name := range b.PFs {
			pf, err := d.opts.Kernel.PF(ctx, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("bond %s: %w", b.Name, err))
				continue
			}
			if pf.NumVFs < b.VFsPerPF {
				errs = append(errs, fmt.Errorf("bond %s: %s (%s) has %d VFs now, %d configured", b.Name, name, pf.PCI, pf.NumVFs, b.VFsPerPF))
			}
		}
	}
	if err := d.reconcileKernel(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Error("re-reading PF and VF state", "why", why, "err", err)
		return err
	}
	return nil
}
