package vfmgr

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Plan is what the failover planner decided for one event: the bond's
// status after it, the VMs to move to another VF, the MACs to announce
// and the VMs that cannot be moved. It is data: executing it (re-homing
// VFs, sending announcements) is the executor's job, and Apply records it
// in the State.
//
// Every list is sorted by allocation key, so a plan renders (String) the
// same way every time and compares as text.
type Plan struct {
	// Event is the event the plan answers.
	Event Event
	// Skip says why the event changes nothing, when it does not: it wraps
	// ErrNotManaged (unknown bond or PF), ErrStale (a failback that no
	// longer holds) or ErrInvalid (unknown kind). The rest of the plan is
	// empty then. Nil for a plan to apply.
	Skip error
	// Status is the bond's status once the plan is applied.
	Status BondStatus
	// Moves re-home VMs onto free VFs of the other PF with identical MAC,
	// VLAN, QoS and trust.
	Moves []Move
	// Announce lists, per moved VM, the MAC to announce on its new port.
	Announce []Announcement
	// Unplaceable lists the VMs a rule wanted to move but could not; each
	// stays where it is. They are never dropped silently: the executor
	// logs them and counts them in its metrics.
	Unplaceable []Unplaceable
	// Later lists events the caller must feed back to Plan at their At
	// (a FailbackDue); they are checked again then.
	Later []Event
}

// Move re-homes one VM onto another VF.
type Move struct {
	// Key is the allocation's key (VM/interface).
	Key string
	// VM is the VM's name.
	VM string
	// MAC, VLAN, QoS and Trust are the settings the new VF gets: the VM's.
	MAC net.HardwareAddr
	// VLAN is the VM's port VLAN (0 untagged).
	VLAN int
	// QoS is the port VLAN's 802.1p priority.
	QoS int
	// Trust is the VM's trust setting.
	Trust bool
	// From is the VF the VM holds now; To the free VF it moves to.
	From, To VFRef
	// FromPCI and ToPCI are the two VFs' PCI addresses.
	FromPCI, ToPCI string
	// Why says which rule moves it: "pf0 has no carrier", "bond0 active
	// pf0 -> pf1", "failback to home pf0", "failback to active pf0".
	Why string
}

// Announcement is one MAC to announce to the switches after a move, so
// that they learn the VM on its new port at once rather than when their
// forwarding entries age out.
type Announcement struct {
	// Key is the allocation's key.
	Key string
	// PF is the port to send from: the PF of the VM's new VF.
	PF string
	// MAC is the VM's MAC, the source of the frames.
	MAC net.HardwareAddr
	// VLAN and QoS tag the frames (VLAN 0: untagged).
	VLAN, QoS int
	// Addrs are the VM's known addresses: gratuitous ARP (RFC 5227) for
	// IPv4, unsolicited neighbor advertisements (RFC 4861 section 7.2.6) for
	// IPv6; RARP when empty and the config asks for it.
	Addrs []netip.Addr
}

// Unplaceable is a VM a rule wanted to move but could not.
type Unplaceable struct {
	// Key is the allocation's key.
	Key string
	// MAC is the VM's MAC.
	MAC net.HardwareAddr
	// VF is the VF it keeps.
	VF VFRef
	// Stranded is true when that VF's PF has no carrier: the VM is cut off
	// until a PF comes back or a VF frees up (a Reconcile plan, or the
	// next event, moves it then).
	Stranded bool
	// Reason says why it could not move: "pf0 and pf1 have no carrier",
	// "no free VF on pf1 (7/7 used)".
	Reason string
}

// Plan decides what the event means for the VMs of its bond. It never
// changes s. The rules, applied in this order, each to VMs no earlier rule
// moved:
//
//  1. Failover (every policy, every event): a VM whose PF has no carrier
//     moves to a free VF of the other PF if that one has carrier; if not,
//     it is Unplaceable and Stranded.
//  2. Follow the bond (active-first): on ActiveChanged, the VMs on the old
//     active PF move to the new one at once (the bond may have left a port
//     whose carrier is up, e.g. on an ARP monitor failure). Those that do
//     not fit stay, Unplaceable but not stranded. If the new active PF has
//     no carrier yet (its regain is still held down), they stay on the old
//     one, which has carrier, unreported; a failback may take them later.
//     Under balance an active change moves nothing by itself.
//  3. CarrierRegained moves nothing back (only rule 1 may place stranded
//     VMs on the returning PF). With a failback delay, and when VMs would
//     move back, Later asks for a FailbackDue at At + delay.
//  4. FailbackDue for PF P, if P has had carrier for the whole delay:
//     under balance the VMs whose Home is P move back to it; under
//     active-first, if P is the active PF, every VM on the other PF moves
//     to it. As many as fit, by key; the rest stay, Unplaceable but not
//     stranded. With failback off the event is skipped.
//
// Only moved MACs are announced: a VM that stays keeps its port, and the
// switches already know it there. Targets are the lowest-numbered free VFs
// at plan time, handed out in key order.
func (s State) Plan(ev Event) Plan {
	pl := Plan{Event: ev}
	p, ok := s.pools[ev.Bond]
	if !ok {
		pl.Skip = fmt.Errorf("%s: bond %q: %w", ev.Kind, ev.Bond, ErrNotManaged)
		return pl
	}
	st, err := p.statusAfter(ev)
	if err != nil {
		pl.Skip = err
		return pl
	}
	w := &planner{p: p, st: st, done: map[string]bool{}, plan: &pl}
	for pi := range p.ports {
		w.free[pi] = p.ports[pi].free()
	}

	// Rule 1: failover.
	for pi := range p.ports {
		if !st.Ports[pi].Carrier {
			w.evacuate(pi, st.Ports[pi].PF+" has no carrier", true, nil)
		}
	}
	switch ev.Kind {
	case ActiveChanged:
		// Rule 2: follow the bond.
		old := p.portOf(p.active)
		if p.policy == ActiveFirst && old >= 0 && ev.PF != "" && ev.PF != p.active && st.Ports[old].Carrier {
			w.evacuate(old, fmt.Sprintf("%s active %s -> %s", p.bond, p.active, ev.PF), false, nil)
		}
	case CarrierRegained:
		// Rule 3: no failback now; maybe later.
		if p.failback > 0 && w.wouldFailBack(p.portOf(ev.PF)) {
			pl.Later = append(pl.Later, Event{Kind: FailbackDue, Bond: p.bond, PF: ev.PF, At: ev.At.Add(p.failback)})
		}
	case FailbackDue:
		// Rule 4: failback.
		pi := p.portOf(ev.PF)
		switch {
		case p.policy == Balance:
			home := ev.PF
			w.evacuate(1-pi, "failback to home "+ev.PF, false, func(a Allocation) bool { return a.Home == home })
		case st.Active == ev.PF:
			w.evacuate(1-pi, "failback to active "+ev.PF, false, nil)
		}
	}

	slices.SortFunc(pl.Moves, func(a, b Move) int { return strings.Compare(a.Key, b.Key) })
	slices.SortFunc(pl.Unplaceable, func(a, b Unplaceable) int { return strings.Compare(a.Key, b.Key) })
	for _, m := range pl.Moves {
		a := p.allocs[m.Key]
		pl.Announce = append(pl.Announce, Announcement{
			Key: m.Key, PF: m.To.PF, MAC: slices.Clone(m.MAC), VLAN: m.VLAN, QoS: m.QoS, Addrs: slices.Clone(a.Addrs),
		})
		st.Ports[p.portOf(m.From.PF)].Used--
		st.Ports[p.portOf(m.To.PF)].Used++
	}
	pl.Status = st
	return pl
}

// statusAfter returns the bond's status once ev has happened, or why ev
// is to be skipped.
func (p *Pool) statusAfter(ev Event) (BondStatus, error) {
	st := p.Status()
	pi := p.portOf(ev.PF)
	switch ev.Kind {
	case ActiveChanged:
		if ev.PF != "" && pi < 0 {
			return st, fmt.Errorf("%s on %s: %s is not a port of it: %w", ev.Kind, p.bond, ev.PF, ErrNotManaged)
		}
		st.Active = ev.PF
	case CarrierLost, CarrierRegained, FailbackDue:
		if pi < 0 {
			return st, fmt.Errorf("%s on %s: %q is not a port of it: %w", ev.Kind, p.bond, ev.PF, ErrNotManaged)
		}
		ps := &st.Ports[pi]
		switch ev.Kind {
		case CarrierLost:
			ps.Carrier, ps.CarrierSince = false, time.Time{}
		case CarrierRegained:
			if !ps.Carrier {
				ps.Carrier, ps.CarrierSince = true, ev.At
			}
		case FailbackDue:
			switch {
			case p.failback == 0:
				return st, fmt.Errorf("fail back to %s on %s: failback is off: %w", ev.PF, p.bond, ErrStale)
			case !ps.Carrier:
				return st, fmt.Errorf("fail back to %s on %s: no carrier: %w", ev.PF, p.bond, ErrStale)
			case ev.At.Sub(ps.CarrierSince) < p.failback:
				return st, fmt.Errorf("fail back to %s on %s: carrier only since %s, failback after %s: %w",
					ev.PF, p.bond, ps.CarrierSince.Format("15:04:05.000"), p.failback, ErrStale)
			}
		}
	case Reconcile:
	default:
		return st, fmt.Errorf("event on %s: unknown kind %d: %w", p.bond, int(ev.Kind), ErrInvalid)
	}
	return st, nil
}

// planner is the scratch state of one Plan call.
type planner struct {
	p  *Pool
	st BondStatus
	// free counts each port's VFs still free for targets.
	free [2]int
	// next is each port's first slot that may be free.
	next [2]int
	// done marks the keys already moved or reported.
	done map[string]bool
	plan *Plan
}

// evacuate moves the VMs on port src (those keep accepts; all when nil)
// to free VFs of the other port, in key order. The ones that cannot go are
// reported when stranded is set, or when the other port has carrier
// (it is full).
func (w *planner) evacuate(src int, why string, stranded bool, keep func(Allocation) bool) {
	dst := 1 - src
	from, to := &w.p.ports[src], &w.p.ports[dst]
	var keys []string
	for _, key := range from.held {
		if key != "" && !w.done[key] && (keep == nil || keep(w.p.allocs[key])) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		a := w.p.allocs[key]
		if why := a.Mode.pinned(w.p.libvirt); why != "" {
			// vflagd cannot hand such a VM another VF: leave it, and
			// say so when it is cut off.
			w.done[key] = true
			if stranded {
				w.plan.Unplaceable = append(w.plan.Unplaceable, Unplaceable{
					Key: key, MAC: slices.Clone(a.MAC), VF: a.VF, Stranded: true,
					Reason: fmt.Sprintf("%s has no carrier and %s", from.pf.Name, why),
				})
			}
			continue
		}
		dstUp := w.st.Ports[dst].Carrier
		if dstUp && w.free[dst] > 0 {
			si := to.firstFree(w.next[dst])
			w.next[dst] = si + 1
			w.free[dst]--
			w.done[key] = true
			fromVF, _ := w.p.VF(a.VF)
			w.plan.Moves = append(w.plan.Moves, Move{
				Key: key, VM: a.VM, MAC: slices.Clone(a.MAC), VLAN: a.VLAN, QoS: a.QoS, Trust: a.Trust,
				From: a.VF, To: to.ref(si), FromPCI: fromVF.PCI, ToPCI: to.vfs[si].PCI, Why: why,
			})
			continue
		}
		var reason string
		switch {
		case !dstUp && !stranded:
			continue // it stays on a PF with carrier; nothing to report
		case !dstUp:
			reason = fmt.Sprintf("%s and %s have no carrier", from.pf.Name, to.pf.Name)
		default:
			reason = fmt.Sprintf("no free VF on %s (%d/%d used)", to.pf.Name, len(to.vfs)-w.free[dst], len(to.vfs))
		}
		if !stranded {
			reason = fmt.Sprintf("%s, stays on %s", reason, from.pf.Name)
		}
		w.done[key] = true
		w.plan.Unplaceable = append(w.plan.Unplaceable, Unplaceable{
			Key: key, MAC: slices.Clone(a.MAC), VF: a.VF, Stranded: stranded, Reason: reason,
		})
	}
}

// wouldFailBack reports whether a FailbackDue for port pi would move a VM
// now (rule 4), so that asking for one is worth it.
func (w *planner) wouldFailBack(pi int) bool {
	if w.p.policy == ActiveFirst && w.st.Active != w.p.ports[pi].pf.Name {
		return false
	}
	home := w.p.ports[pi].pf.Name
	for _, key := range w.p.ports[1-pi].held {
		if key == "" || w.done[key] {
			continue
		}
		if w.p.policy == ActiveFirst || w.p.allocs[key].Home == home {
			return true
		}
	}
	return false
}

// Apply returns the State after the plan: the bond's new status, and each
// move's VM on its new VF (Since set to the event's time). s is left
// unchanged. Apply every plan, also one without moves: the status change
// matters for later allocations and plans. A plan must be applied to the
// State it was made from; when moves failed, apply a copy of the plan with
// only the moves that were carried out (then plan a Reconcile). A move that
// no longer fits (its VM is gone or holds another VF, its target is held)
// is left out. A skipped plan changes nothing.
func (s State) Apply(pl Plan) State {
	out := s.Clone()
	if pl.Skip != nil {
		return out
	}
	p, ok := out.pools[pl.Event.Bond]
	if !ok || pl.Status.Bond != p.bond {
		return out
	}
	if pl.Status.Active == "" || p.portOf(pl.Status.Active) >= 0 {
		p.active = pl.Status.Active
	}
	for _, ps := range pl.Status.Ports {
		if pi := p.portOf(ps.PF); pi >= 0 {
			p.ports[pi].pf.Carrier = ps.Carrier
			p.ports[pi].since = ps.CarrierSince
		}
	}
	for _, m := range pl.Moves {
		p.move(m, pl)
	}
	return out
}

// move carries out one move of pl, if it still fits.
func (p *Pool) move(m Move, pl Plan) {
	a, ok := p.allocs[m.Key]
	if !ok || a.VF != m.From {
		return
	}
	dst := p.portOf(m.To.PF)
	if dst < 0 {
		return
	}
	si := p.ports[dst].slot(m.To.Index)
	if si < 0 || p.ports[dst].held[si] != "" {
		return
	}
	p.unhold(a)
	a.VF = m.To
	a.Since = pl.Event.At
	p.hold(dst, si, a)
}

// String renders the plan as comparable text, one line per item:
//
//	event 10:00:00.000 bond0 carrier-lost pf0
//	status bond0 active-first active pf1: pf0 down 0/4, pf1 up 2/4
//	move vm1/net0 52:54:00:00:00:01 vlan 10 qos 0 trust off: pf0 vf 0 (0000:01:10.0) -> pf1 vf 0 (0000:01:10.1): pf0 has no carrier
//	announce vm1/net0 52:54:00:00:00:01 vlan 10 qos 0 on pf1: 192.0.2.10
//	unplaceable vm3/net0 52:54:00:00:00:03 on pf0 vf 2 (stranded): pf0 and pf1 have no carrier
//	later 10:00:30.000 bond0 failback-due pf0
//	skip: fail back to pf0 on bond0: failback is off: stale event
func (pl Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "event %s\n", pl.Event)
	if pl.Skip != nil {
		fmt.Fprintf(&b, "skip: %v\n", pl.Skip)
		return b.String()
	}
	fmt.Fprintf(&b, "status %s\n", pl.Status)
	for _, m := range pl.Moves {
		fmt.Fprintf(&b, "move %s %s vlan %d qos %d trust %s: %s (%s) -> %s (%s): %s\n",
			m.Key, m.MAC, m.VLAN, m.QoS, onOff(m.Trust), m.From, m.FromPCI, m.To, m.ToPCI, m.Why)
	}
	for _, a := range pl.Announce {
		addrs := "no addresses"
		if len(a.Addrs) > 0 {
			s := make([]string, len(a.Addrs))
			for i, ip := range a.Addrs {
				s[i] = ip.String()
			}
			addrs = strings.Join(s, " ")
		}
		fmt.Fprintf(&b, "announce %s %s vlan %d qos %d on %s: %s\n", a.Key, a.MAC, a.VLAN, a.QoS, a.PF, addrs)
	}
	for _, u := range pl.Unplaceable {
		how := "reachable"
		if u.Stranded {
			how = "stranded"
		}
		fmt.Fprintf(&b, "unplaceable %s %s on %s (%s): %s\n", u.Key, u.MAC, u.VF, how, u.Reason)
	}
	for _, ev := range pl.Later {
		fmt.Fprintf(&b, "later %s\n", ev)
	}
	return b.String()
}

// onOff renders a switch.
func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
