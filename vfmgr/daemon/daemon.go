package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vflag/vflag/announce"
	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
	"github.com/vflag/vflag/vfmgr/store"
)

// BondConfig is one managed bond.
type BondConfig struct {
	// Name is the bond's netdev.
	Name string
	// PFs are its two ports.
	PFs [2]string
	// VFsPerPF is how many VFs vflag uses on each PF.
	VFsPerPF int
	// Policy places VMs (active-first or balance).
	Policy vfmgr.Policy
	// FailbackAfter is the failback delay (0: never).
	FailbackAfter time.Duration
	// RDMA is the bond's RDMA mode ("" or off: none).
	RDMA rdmamgr.Mode
	// Mode is what the bond's NIC backend is asked for ("": software).
	Mode plugin.Mode
}

// DefaultParallelMoves bounds the VMs re-homed at once in one failover.
const DefaultParallelMoves = 8

// DefaultRetryAfter is how long vflagd waits before it tries the moves
// that failed twice (the event's and the Reconcile right after) once more;
// each further failure doubles the wait, up to MaxRetryAfter.
const (
	DefaultRetryAfter = 30 * time.Second
	MaxRetryAfter     = 5 * time.Minute
)

// Options configure a Daemon.
type Options struct {
	// Bonds are the managed bonds.
	Bonds []BondConfig
	// HoldDown damps a flapping port: its regained carrier counts only
	// after this long.
	HoldDown time.Duration
	// RARPWithoutAddrs announces a MAC with no known address by RARP.
	RARPWithoutAddrs bool
	// ParallelMoves is how many VMs one failover re-homes at once
	// (default DefaultParallelMoves; 1 runs them in plan order).
	ParallelMoves int
	// RetryAfter is the first wait before moves that failed twice are
	// tried again (default DefaultRetryAfter).
	RetryAfter time.Duration
	// Kernel, BondCtl, Store, VMs and Announcer are the seams.
	Kernel    Kernel
	BondCtl   Bonds
	Store     Store
	VMs       VMSide
	Announcer Announcer
	// Domains, when set, is vflagd's libvirt side: failover and hotswap
	// interfaces of libvirt domains are re-homed through it, and the pool
	// networks kept up to date. Without it they keep their VF.
	Domains Domains
	// RDMA, when set, puts each bond's RDMA mode in place at start.
	RDMA RDMA
	// NICs are the bonds' NIC backends, by bond name (see nic.go): each
	// prepares its bond at start and, when it probed HardwareFollow, says
	// which VFs the NIC carries on a failover. A bond without one is
	// re-homed in software only.
	NICs map[string]plugin.Backend
	// Metrics, when set, counts what the daemon does.
	Metrics *Metrics
	// Log is the daemon's logger.
	Log *slog.Logger
}

// Daemon is vflagd's core.
type Daemon struct {
	opts Options
	log  *slog.Logger

	// mu guards state, later, subs, caps and started; failovers run
	// under it, so an API call never sees a half-executed plan.
	mu    sync.Mutex
	state vfmgr.State
	later []vfmgr.Event
	// retry is, by bond, the wait before the next retry of failed moves
	// (absent: none failed since the last Reconcile that moved them all).
	retry map[string]time.Duration
	subs  map[chan *vflagpb.Event]struct{}
	// caps are what each bond's NIC backend probed at start.
	caps map[string]plugin.Capabilities
	// started is set once Start has taken the inventory.
	started bool

	// announcing tracks announcement goroutines, for Close.
	announcing sync.WaitGroup
	// rdma follows the bonds' RDMA GIDs across failovers.
	rdma rdmaWatch
}

// New returns a daemon; Start takes the inventory.
func New(opts Options) *Daemon {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	return &Daemon{opts: opts, log: opts.Log, subs: map[chan *vflagpb.Event]struct{}{}, retry: map[string]time.Duration{}}
}

// Start takes the inventory of every managed bond, creates missing VFs,
// loads the allocation table, resolves failovers a crash interrupted,
// reconciles the table with the kernel and applies the rules once.
func (d *Daemon) Start(ctx context.Context) error {
	caps, err := d.prepareBonds(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.caps = caps
	d.mu.Unlock()
	known, err := d.knownVFs()
	if err != nil {
		return err
	}
	now := time.Now()
	var pools []*vfmgr.Pool
	for _, b := range d.opts.Bonds {
		spec, err := d.inventory(ctx, b, now, known)
		if err != nil {
			return err
		}
		p, err := vfmgr.NewPool(spec)
		if err != nil {
			return fmt.Errorf("bond %s: %w", b.Name, err)
		}
		pools = append(pools, p)
	}
	if d.opts.RDMA != nil {
		for _, b := range d.opts.Bonds {
			if b.RDMA == "" {
				continue
			}
			rs, err := d.opts.RDMA.Ensure(ctx, b.Name, b.RDMA)
			if err != nil {
				return fmt.Errorf("bond %s: rdma %s: %w", b.Name, b.RDMA, err)
			}
			d.rdma.remember(b.Name, rs)
			if b.RDMA != rdmamgr.ModeOff {
				d.log.Info("RDMA in place", "bond", b.Name, "mode", string(b.RDMA), "device", rs.Device, "healthy", rs.Healthy)
			}
		}
	}
	st, err := vfmgr.NewState(pools...)
	if err != nil {
		return err
	}
	if err := d.recoverIntents(ctx); err != nil {
		return err
	}
	allocs, err := d.opts.Store.List()
	if err != nil {
		return fmt.Errorf("load allocations: %w", err)
	}
	for _, a := range allocs {
		if err := st.Adopt(a); err != nil {
			return fmt.Errorf("allocation table and configuration disagree: %s: %w", a.Key(), err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state = st
	if err := d.reconcileKernel(ctx); err != nil {
		return err
	}
	d.started = true
	for _, b := range d.opts.Bonds {
		d.handle(ctx, vfmgr.Event{Kind: vfmgr.Reconcile, Bond: b.Name, At: now})
	}
	d.announceAll(ctx)
	d.changed()
	d.log.Info("vflagd ready", "bonds", len(pools), "allocations", len(allocs))
	return nil
}

// inventory reads a bond's PFs and VFs, creating VFs when there are none.
// knownVFs are the VFs the allocation table or an interrupted failover
// names.
func (d *Daemon) knownVFs() (map[vfmgr.VFRef]bool, error) {
	known := map[vfmgr.VFRef]bool{}
	allocs, err := d.opts.Store.List()
	if err != nil {
		return nil, fmt.Errorf("load allocations: %w", err)
	}
	for _, a := range allocs {
		known[a.VF] = true
	}
	intents, err := d.opts.Store.PendingMoves()
	if err != nil {
		return nil, fmt.Errorf("load failover intents: %w", err)
	}
	for _, in := range intents {
		for _, m := range in.Moves {
			known[m.From], known[m.To] = true, true
		}
	}
	return known, nil
}

// guestDriver is the driver of a VF assigned to a guest (VFIO).
const guestDriver = "vfio-pci"

// foreign reports whether v is assigned to a guest that vflag does not
// know: bound to vfio-pci, and in no allocation or intent. Such a VF came
// from libvirt or Nova while vflagd was down or refused (the hook's
// fail_open); vflagd must neither hand it out nor touch its settings.
func foreign(v vfmgr.VF, known map[vfmgr.VFRef]bool) bool {
	return v.Driver == guestDriver && !known[vfmgr.VFRef{PF: v.PF, Index: v.Index}]
}

func (d *Daemon) inventory(ctx context.Context, b BondConfig, now time.Time, known map[vfmgr.VFRef]bool) (vfmgr.PoolSpec, error) {
	spec := vfmgr.PoolSpec{Bond: b.Name, Policy: b.Policy, FailbackAfter: b.FailbackAfter, At: now, Libvirt: d.opts.Domains != nil}
	for i, name := range b.PFs {
		pf, err := d.opts.Kernel.PF(ctx, name)
		if err != nil {
			return spec, fmt.Errorf("bond %s: %w", b.Name, err)
		}
		if pf.Bond != b.Name {
			return spec, fmt.Errorf("bond %s: %s (%s) is not enslaved to it (master %q)", b.Name, name, pf.PCI, pf.Bond)
		}
		if b.VFsPerPF > pf.TotalVFs {
			return spec, fmt.Errorf("bond %s: %d VFs per PF configured but %s (%s, %s) has sriov_totalvfs %d",
				b.Name, b.VFsPerPF, name, pf.PCI, pf.Driver, pf.TotalVFs)
		}
		switch {
		case pf.NumVFs == 0:
			d.log.Info("creating VFs", "pf", name, "count", b.VFsPerPF)
			if err := d.opts.Kernel.SetNumVFs(ctx, name, b.VFsPerPF); err != nil {
				return spec, fmt.Errorf("bond %s: %w", b.Name, err)
			}
		case pf.NumVFs < b.VFsPerPF:
			// Changing a non-zero count destroys every VF, with whatever
			// uses them: never done behind an operator's back.
			return spec, fmt.Errorf("bond %s: %s (%s) has %d VFs, %d configured; vflag will not recreate VFs that may be in use: set sriov_numvfs to 0 or lower vfs_per_pf",
				b.Name, name, pf.PCI, pf.NumVFs, b.VFsPerPF)
		}
		vfs, err := d.opts.Kernel.VFs(ctx, name)
		if err != nil {
			return spec, fmt.Errorf("bond %s: %w", b.Name, err)
		}
		sort.Slice(vfs, func(i, j int) bool { return vfs[i].Index < vfs[j].Index })
		if len(vfs) > b.VFsPerPF {
			vfs = vfs[:b.VFsPerPF]
		}
		usable := make([]vfmgr.VF, 0, len(vfs))
		for _, v := range vfs {
			if foreign(v, known) {
				d.log.Warn("VF is assigned to a guest vflag does not know; not handing it out (restart the VM, or libvirtd, so that vflag's hook reports it)",
					"vf", v.ID(), "driver", v.Driver, "mac", v.MAC.String())
				continue
			}
			usable = append(usable, v)
		}
		spec.PFs[i], spec.VFs[i] = pf, usable
	}
	active, err := d.opts.BondCtl.Active(ctx, b.Name)
	if err != nil {
		return spec, err
	}
	spec.Active = active
	return spec, nil
}

// recoverIntents finishes or rolls back the moves of a failover that a
// crash interrupted: a move whose target VF already carries the VM's MAC
// went through and is committed; otherwise the whole intent is aborted and
// the targets are reset, and the Reconcile plan after start moves the VMs
// again.
func (d *Daemon) recoverIntents(ctx context.Context) error {
	intents, err := d.opts.Store.PendingMoves()
	if err != nil {
		return fmt.Errorf("load pending moves: %w", err)
	}
	if len(intents) == 0 {
		return nil
	}
	allocs, err := d.opts.Store.List()
	if err != nil {
		return fmt.Errorf("load allocations: %w", err)
	}
	byKey := map[string]vfmgr.Allocation{}
	for _, a := range allocs {
		byKey[a.Key()] = a
	}
	for _, in := range intents {
		done := true
		for _, m := range in.Moves {
			a := byKey[m.Key]
			if ok, err := d.vfHasMAC(ctx, m.To, a); err != nil || !ok {
				done = false
			}
		}
		if done {
			d.log.Warn("completing a failover interrupted by a crash", "intent", in.ID, "moves", len(in.Moves))
			for _, m := range in.Moves {
				a := byKey[m.Key]
				if side := d.vmSide(a); side != nil {
					_ = side.Unplug(ctx, a)
					if err := side.Plug(ctx, a, m.To); err != nil {
						d.log.Warn("re-plug after crash", "vm", a.VM, "vf", m.To.String(), "err", err)
					}
				}
				if err := d.opts.Kernel.ResetVF(ctx, m.From.PF, m.From.Index); err != nil {
					d.log.Warn("reset old VF after crash", "vf", m.From.String(), "err", err)
				}
			}
			if err := d.opts.Store.CommitMoves(in.ID); err != nil {
				return fmt.Errorf("commit interrupted failover %s: %w", in.ID, err)
			}
			continue
		}
		d.log.Warn("rolling back a failover interrupted by a crash", "intent", in.ID, "moves", len(in.Moves))
		for _, m := range in.Moves {
			a := byKey[m.Key]
			if ok, _ := d.vfHasMAC(ctx, m.To, a); ok {
				if side := d.vmSide(a); side != nil {
					// The move got past configuring the target, so the VM
					// may hold it (or nothing): give it its old VF back,
					// configured first (a VF driver reads its MAC when it
					// binds).
					_ = side.Unplug(ctx, a)
					if err := d.opts.Kernel.ConfigureVF(ctx, m.From.PF, m.From.Index, vfConfig(a)); err != nil {
						return fmt.Errorf("roll back %s: %w", m.From, err)
					}
					if err := side.Plug(ctx, a, m.From); err != nil {
						d.log.Warn("re-plug old VF after crash", "vm", a.VM, "vf", m.From.String(), "err", err)
					}
				}
				if err := d.opts.Kernel.ResetVF(ctx, m.To.PF, m.To.Index); err != nil {
					return fmt.Errorf("roll back %s: %w", m.To, err)
				}
			}
		}
		if err := d.opts.Store.AbortMoves(in.ID); err != nil {
			return fmt.Errorf("abort interrupted failover %s: %w", in.ID, err)
		}
	}
	return nil
}

func (d *Daemon) vfHasMAC(ctx context.Context, ref vfmgr.VFRef, a vfmgr.Allocation) (bool, error) {
	vfs, err := d.opts.Kernel.VFs(ctx, ref.PF)
	if err != nil {
		return false, err
	}
	for _, v := range vfs {
		if v.Index == ref.Index {
			return macEqual(v.MAC, a.MAC), nil
		}
	}
	return false, nil
}

// reconcileKernel makes every allocated VF carry its allocation's settings
// (the table wins: it is what VMs were promised) and reports VFs that carry
// a MAC no allocation explains. d.mu is held.
func (d *Daemon) reconcileKernel(ctx context.Context) error {
	held := map[vfmgr.VFRef]vfmgr.Allocation{}
	for _, a := range d.state.Allocations() {
		held[a.VF] = a
	}
	for _, b := range d.opts.Bonds {
		for _, pf := range b.PFs {
			vfs, err := d.opts.Kernel.VFs(ctx, pf)
			if err != nil {
				return err
			}
			for _, v := range vfs {
				a, ok := held[vfmgr.VFRef{PF: pf, Index: v.Index}]
				switch {
				case ok && (!macEqual(v.MAC, a.MAC) || v.VLAN != a.VLAN || v.QoS != a.QoS || !v.SpoofChk || v.Trust != a.Trust):
					d.log.Warn("VF disagrees with the allocation table; reconfiguring", "vf", v.ID(), "vm", a.VM, "mac", a.MAC.String(), "kernel_mac", v.MAC.String())
					if err := d.opts.Kernel.ConfigureVF(ctx, pf, v.Index, vfConfig(a)); err != nil {
						return err
					}
				case !ok && v.Driver == guestDriver:
					// A guest's VF vflag does not know: left alone (see
					// foreign).
				case !ok && len(v.MAC) > 0 && v.Index < b.VFsPerPF:
					// The driver's random default, or left behind by a VM that
					// is gone: either way no VM of ours may share it.
					d.log.Info("clearing the MAC of an unallocated VF", "vf", v.ID(), "kernel_mac", v.MAC.String())
					if err := d.opts.Kernel.ResetVF(ctx, pf, v.Index); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// vmSide is who hands a's VM a VF on a move: the VM side for a namespace
// VM, vflagd's libvirt side for a domain's failover or hotswap interface,
// nobody otherwise (the VF is configured on its PF only; whoever gave it
// to the guest keeps it there).
func (d *Daemon) vmSide(a vfmgr.Allocation) VMSide {
	switch {
	case a.Netns != "" && d.opts.VMs != nil:
		return d.opts.VMs
	case a.DomainUUID != "" && d.opts.Domains != nil && (a.Mode == vfmgr.ModeFailover || a.Mode == vfmgr.ModeHotswap):
		return d.opts.Domains
	}
	return nil
}

func vfConfig(a vfmgr.Allocation) sriov.VFConfig {
	return sriov.VFConfig{MAC: a.MAC, VLAN: a.VLAN, QoS: a.QoS, SpoofChk: true, Trust: a.Trust}
}

// Run feeds link messages to the bond FSM and executes the plans, until
// ctx ends or msgs closes.
func (d *Daemon) Run(ctx context.Context, msgs <-chan vfmgr.LinkMsg) error {
	d.mu.Lock()
	fsm := vfmgr.NewFSM(d.opts.HoldDown, d.state.Bonds()...)
	d.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	arm := func(next time.Time) {
		d.mu.Lock()
		for _, ev := range d.later {
			if next.IsZero() || ev.At.Before(next) {
				next = ev.At
			}
		}
		d.mu.Unlock()
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
	arm(time.Time{}) // a retry Start scheduled
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return errors.New("bond watcher stopped")
			}
			evs, next := fsm.Feed(m)
			d.handleAll(ctx, evs)
			arm(next)
		case now := <-timer.C:
			evs, next := fsm.Tick(now)
			d.mu.Lock()
			var due []vfmgr.Event
			d.later = slices.DeleteFunc(d.later, func(ev vfmgr.Event) bool {
				if !ev.At.After(now) {
					due = append(due, ev)
					return true
				}
				return false
			})
			d.mu.Unlock()
			d.handleAll(ctx, append(evs, due...))
			arm(next)
		}
	}
}

func (d *Daemon) handleAll(ctx context.Context, evs []vfmgr.Event) {
	if len(evs) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ev := range evs {
		d.handle(ctx, ev)
	}
	d.changed()
}

// handle plans and executes one event. d.mu is held.
func (d *Daemon) handle(ctx context.Context, ev vfmgr.Event) {
	start := time.Now()
	pl := d.state.Plan(ev)
	d.log.Info("bond event", "bond", ev.Bond, "event", ev.Kind.String(), "pf", ev.PF, "from", ev.From)
	d.checkRDMAAfter(ev)
	failed := false // some moves did not go through
	if ev.Kind == vfmgr.Reconcile {
		defer func() {
			if failed {
				d.retryLater(ev.Bond)
			} else {
				delete(d.retry, ev.Bond)
			}
		}()
	}
	if pl.Skip != nil {
		d.log.Debug("event changes nothing", "bond", ev.Bond, "reason", pl.Skip)
		return
	}
	d.later = append(d.later, pl.Later...)
	carried, software := d.carried(ctx, pl)
	carriedAnns := d.withAddrs(ctx, announcementsOf(pl, carried))
	pinnedAnns, unplaceable := d.carriedPinned(ctx, pl)
	carriedAnns = append(carriedAnns, pinnedAnns...)
	pl.Moves, pl.Unplaceable = software, unplaceable
	nCarried := len(carried) + len(pinnedAnns)
	for _, u := range pl.Unplaceable {
		d.log.Error("VM cannot be moved", "bond", ev.Bond, "key", u.Key, "mac", u.MAC.String(), "vf", u.VF.String(), "stranded", u.Stranded, "reason", u.Reason)
		d.opts.Metrics.unplaceable(ev.Bond)
		d.emit(&vflagpb.Event{Kind: "unplaceable", Bond: ev.Bond, Pf: u.VF.PF, Mac: u.MAC.String(), Message: u.Reason})
	}
	if len(pl.Moves) == 0 {
		d.state = d.state.Apply(pl)
		d.emit(&vflagpb.Event{Kind: ev.Kind.String(), Bond: ev.Bond, Pf: ev.PF})
		if nCarried > 0 {
			d.emit(&vflagpb.Event{Kind: "failover", Bond: ev.Bond, Pf: ev.PF, Message: fmt.Sprintf("%s: %d carried by the NIC", ev.Kind, nCarried)})
		}
		d.announce(carriedAnns)
		return
	}
	// The carried VMs' traffic is on the new port already: tell the
	// switches now, not after the software moves.
	d.announce(carriedAnns)
	moved := d.execute(ctx, pl)
	failed = len(moved) < len(pl.Moves)
	if failed && ev.Kind != vfmgr.Reconcile {
		// Some VMs stayed: enforce the rules once more from the state as it
		// is, at once; should that fail too, retryLater takes over.
		defer d.handle(ctx, vfmgr.Event{Kind: vfmgr.Reconcile, Bond: ev.Bond, At: time.Now()})
	}
	took := time.Since(start)
	d.opts.Metrics.failover(ev.Bond, took, len(moved))
	d.log.Info("failover executed", "bond", ev.Bond, "event", ev.Kind.String(), "pf", ev.PF,
		"moved", len(moved), "carried", nCarried, "failed", len(pl.Moves)-len(moved), "took", took)
	msg := fmt.Sprintf("%s: %d moved, %d failed", ev.Kind, len(moved), len(pl.Moves)-len(moved))
	if nCarried > 0 {
		msg = fmt.Sprintf("%s: %d moved, %d carried by the NIC, %d failed", ev.Kind, len(moved), nCarried, len(pl.Moves)-len(moved))
	}
	d.emit(&vflagpb.Event{
		Kind: "failover", Bond: ev.Bond, Pf: ev.PF, Moved: uint32(len(moved)), DurationMs: float64(took.Microseconds()) / 1000,
		Message: msg,
	})
}

// retryLater schedules a Reconcile of bond after the bond's retry wait,
// and doubles the wait for the time after (a guest that let go of its VF
// after the hot-unplug timed out would otherwise sit without one until
// the bond's next event). d.mu is held.
func (d *Daemon) retryLater(bond string) {
	wait, ok := d.retry[bond]
	if !ok {
		wait = d.opts.RetryAfter
	}
	d.retry[bond] = min(2*wait, max(MaxRetryAfter, d.opts.RetryAfter))
	if slices.ContainsFunc(d.later, func(ev vfmgr.Event) bool { return ev.Kind == vfmgr.Reconcile && ev.Bond == bond }) {
		return
	}
	d.log.Warn("moves failed twice; trying again later", "bond", bond, "in", wait)
	d.later = append(d.later, vfmgr.Event{Kind: vfmgr.Reconcile, Bond: bond, At: time.Now().Add(wait)})
}

// execute carries out a plan's moves: write-ahead intent, then per move
// configure the new VF, hand it to the VM side and reset the old one; the
// moves that went through are committed and applied to the state, the
// others leave their VM where it was. Each moved VM is announced from its
// new PF as soon as its own move is done (a teamed VM before its VF is
// swapped: see move), not when the slowest guest has let go of its VF.
// d.mu is held.
func (d *Daemon) execute(ctx context.Context, pl vfmgr.Plan) []vfmgr.Move {
	id := newID()
	moves := make([]store.Move, len(pl.Moves))
	for i, m := range pl.Moves {
		moves[i] = store.Move{Key: m.Key, From: m.From, To: m.To}
	}
	if err := d.opts.Store.BeginMoves(id, moves); err != nil {
		d.log.Error("cannot persist failover intent; nothing moved", "bond", pl.Event.Bond, "err", err)
		// The event happened all the same: record the bond's new status,
		// so that the Reconcile that follows plans the moves again.
		applied := pl
		applied.Moves = nil
		d.state = d.state.Apply(applied)
		return nil
	}
	// Moves touch disjoint VFs and VMs: run them side by side, so the
	// outage of the last VM is not the sum of everyone's driver work.
	allocs := make([]vfmgr.Allocation, len(pl.Moves))
	errs := make([]error, len(pl.Moves))
	par := d.opts.ParallelMoves
	if par <= 0 {
		par = DefaultParallelMoves
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, m := range pl.Moves {
		allocs[i], _ = d.state.Allocation(m.Key)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = d.move(ctx, &allocs[i], m, announcementsOf(pl, []vfmgr.Move{m}))
		}()
	}
	wg.Wait()
	var ok []vfmgr.Move
	for i, m := range pl.Moves {
		if errs[i] != nil {
			d.log.Error("move failed; VM stays", "vm", m.VM, "mac", m.MAC.String(), "from", m.From.String(), "to", m.To.String(), "err", errs[i])
			continue
		}
		ok = append(ok, m)
	}
	final := id
	if len(ok) != len(pl.Moves) {
		if err := d.opts.Store.AbortMoves(id); err != nil {
			d.log.Error("abort failover intent", "intent", id, "err", err)
		}
		final = newID()
		var keep []store.Move
		for _, m := range ok {
			keep = append(keep, store.Move{Key: m.Key, From: m.From, To: m.To})
		}
		if len(keep) > 0 {
			if err := d.opts.Store.BeginMoves(final, keep); err != nil {
				d.log.Error("persist completed moves", "err", err)
			}
		}
	}
	if len(ok) > 0 {
		if err := d.opts.Store.CommitMoves(final); err != nil {
			d.log.Error("commit failover", "intent", final, "err", err)
		}
	}
	applied := pl
	applied.Moves = ok
	d.state = d.state.Apply(applied)
	return ok
}

// move re-homes one VM; a.Addrs gets the addresses the VM side reports.
// It announces anns (the VM's, from its new PF) once the VM's traffic can
// come in there: after the swap, or for a teamed VM (mode failover) before
// it, because its virtio standby on the bond carries the traffic while
// the guest is without a VF. Called without d.mu's protection of d.state.
func (d *Daemon) move(ctx context.Context, a *vfmgr.Allocation, m vfmgr.Move, anns []vfmgr.Announcement) error {
	cfg := sriov.VFConfig{MAC: m.MAC, VLAN: m.VLAN, QoS: m.QoS, SpoofChk: true, Trust: m.Trust}
	if err := d.opts.Kernel.ConfigureVF(ctx, m.To.PF, m.To.Index, cfg); err != nil {
		return err
	}
	announced := false
	if side := d.vmSide(*a); side != nil {
		if addrs, err := side.Addrs(ctx, *a); err == nil {
			a.Addrs = addrs
		}
		anns = withAddrsOf(anns, a.Addrs)
		if a.Mode == vfmgr.ModeFailover {
			d.announce(anns)
			announced = true
		}
		if err := side.Unplug(ctx, *a); err != nil {
			_ = d.opts.Kernel.ResetVF(ctx, m.To.PF, m.To.Index)
			return err
		}
		if err := side.Plug(ctx, *a, m.To); err != nil {
			// Give the VM its old VF back rather than nothing.
			if perr := side.Plug(ctx, *a, m.From); perr != nil {
				err = fmt.Errorf("%w (and giving back %s: %w)", err, m.From, perr)
			}
			_ = d.opts.Kernel.ResetVF(ctx, m.To.PF, m.To.Index)
			return err
		}
	}
	if !announced {
		d.announce(anns)
	}
	if err := d.opts.Kernel.ResetVF(ctx, m.From.PF, m.From.Index); err != nil {
		d.log.Warn("reset old VF", "vf", m.From.String(), "err", err)
	}
	return nil
}

// withAddrsOf returns anns with addrs as their addresses where addrs is
// not empty.
func withAddrsOf(anns []vfmgr.Announcement, addrs []netip.Addr) []vfmgr.Announcement {
	if len(addrs) == 0 {
		return anns
	}
	out := slices.Clone(anns)
	for i := range out {
		out[i].Addrs = addrs
	}
	return out
}

// announce sends the plan's announcements in the background, grouped per
// PF, so the next event is not held up by the announcement rounds.
func (d *Daemon) announce(anns []vfmgr.Announcement) {
	if len(anns) == 0 || d.opts.Announcer == nil {
		return
	}
	byPF := map[string][]announce.Announcement{}
	for _, a := range anns {
		if len(a.Addrs) == 0 && !d.opts.RARPWithoutAddrs {
			continue
		}
		byPF[a.PF] = append(byPF[a.PF], announce.Announcement{MAC: a.MAC, VLAN: a.VLAN, Priority: a.QoS, Addrs: a.Addrs})
	}
	for pf, list := range byPF {
		d.announcing.Add(1)
		go func() {
			defer d.announcing.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n, err := d.opts.Announcer.Announce(ctx, pf, list)
			d.opts.Metrics.announced(pf, n)
			if err != nil {
				d.log.Error("announce", "pf", pf, "sent", n, "err", err)
				return
			}
			d.log.Info("announced", "pf", pf, "macs", len(list), "frames", n)
			// Stamped now: d.mu may be held by a failover that is still
			// waiting for a slow guest, and the event is about this moment.
			ev := &vflagpb.Event{
				Kind: "announce", Pf: pf, Message: fmt.Sprintf("%d MACs, %d frames", len(list), n),
				AtUnixMs: time.Now().UnixMilli(),
			}
			d.mu.Lock()
			d.emit(ev)
			d.mu.Unlock()
		}()
	}
}

// announceAll announces every VM from the PF it is on. At start the daemon
// cannot know whether a previous run told the switches where its last
// failover put the VMs (it may have died between committing the moves and
// sending the frames, or in the middle of them), so it tells them again.
// d.mu is held.
func (d *Daemon) announceAll(ctx context.Context) {
	var anns []vfmgr.Announcement
	for _, b := range d.state.Bonds() {
		up := map[string]bool{}
		for _, p := range b.Ports {
			up[p.PF] = p.Carrier
		}
		pool, _ := d.state.Pool(b.Bond)
		for _, a := range pool.Allocations() {
			if !up[a.VF.PF] {
				continue
			}
			addrs := a.Addrs
			if side := d.vmSide(a); side != nil {
				if got, err := side.Addrs(ctx, a); err == nil {
					addrs = got
				}
			}
			anns = append(anns, vfmgr.Announcement{Key: a.Key(), PF: a.VF.PF, MAC: a.MAC, VLAN: a.VLAN, QoS: a.QoS, Addrs: addrs})
		}
	}
	d.announce(anns)
}

// Close waits for announcements under way.
func (d *Daemon) Close() {
	d.announcing.Wait()
	d.rdma.checks.Wait()
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405.000") + "-" + hex.EncodeToString(b[:])
}

func macEqual(a, b []byte) bool {
	if len(a) == 0 {
		return len(b) == 0
	}
	return slices.Equal(a, b)
}
