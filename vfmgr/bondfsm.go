package vfmgr

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// LinkMsg is one rtnetlink link message (RTM_NEWLINK or RTM_DELLINK) as
// the bond watcher's socket reader hands it to the FSM. The reader fills it
// from the message alone; the FSM resolves interface indexes to names with
// the names it has seen.
type LinkMsg struct {
	// Index is the link's ifindex.
	Index int
	// Name is its name (IFLA_IFNAME).
	Name string
	// Master is the name of the link's master, for a bond's slave. When
	// the reader only has the index, it leaves Master empty and sets
	// MasterIndex.
	Master string
	// MasterIndex is IFLA_MASTER (0 when the link has no master).
	MasterIndex int
	// IsBond marks a bond (IFLA_INFO_KIND "bond").
	IsBond bool
	// ActiveSlave is a bond's active port by name, if the reader knows it;
	// else ActiveSlaveIndex is used.
	ActiveSlave string
	// ActiveSlaveIndex is a bond's IFLA_BOND_ACTIVE_SLAVE (the kernel
	// leaves the attribute out when there is no active slave: 0 or less
	// means none).
	ActiveSlaveIndex int
	// Carrier is IFLA_CARRIER.
	Carrier bool
	// OperUp is IFLA_OPERSTATE being IF_OPER_UP or IF_OPER_UNKNOWN (drivers
	// that do not track it report unknown).
	OperUp bool
	// Deleted marks RTM_DELLINK.
	Deleted bool
	// At is when the message was received; the FSM has no clock.
	At time.Time
}

// FSM is the bond watcher's decision logic: it turns link messages into
// failover events for the managed bonds and damps flapping ports. It does
// no I/O and starts no timers: Feed and Tick return, besides the events,
// the time at which Tick must next be called (zero when nothing waits).
//
// Per managed PF, "up" means carrier, operstate up and still enslaved to
// its bond; a PF deleted, down or released from the bond is down.
//
//   - An active port change is emitted at once (ActiveChanged): failover
//     must be fast.
//   - Losing carrier is emitted at once (CarrierLost).
//   - Regaining carrier is held back for the hold-down; CarrierRegained is
//     emitted by Tick (or the next Feed) once the PF has stayed up that
//     long, with At = the end of the hold-down. If the PF goes down again
//     within the hold-down, the pending regain is dropped and nothing is
//     emitted: to the planner the PF never came back.
//   - Messages about links that are not managed bonds or their PFs, and
//     messages that change nothing, emit nothing.
//
// An FSM is not safe for concurrent use.
type FSM struct {
	holdDown time.Duration
	// bonds holds the managed bonds by name.
	bonds map[string]*fsmBond
	// pfs holds the managed PFs by name.
	pfs map[string]*fsmPF
	// names maps each ifindex seen to its last name.
	names map[int]string
}

// fsmBond is one managed bond.
type fsmBond struct {
	name string
	pfs  [2]string
	// active is the active port last emitted ("" none).
	active string
	// pendingActive is the ifindex of an active slave whose name has not
	// been seen yet (0: none).
	pendingActive int
}

// fsmPF is one managed PF.
type fsmPF struct {
	name, bond string
	// up is the state last emitted.
	up bool
	// pending is set while a regain waits for the hold-down to end at
	// deadline.
	pending  bool
	deadline time.Time
}

// NewFSM returns an FSM that watches the given bonds, starting from their
// status as the State has it (State.Bonds), so that events are emitted for
// differences from what the planner believes. holdDown is how long a PF
// must keep carrier before its regain is emitted (0: at once).
func NewFSM(holdDown time.Duration, bonds ...BondStatus) *FSM {
	f := &FSM{
		holdDown: holdDown,
		bonds:    map[string]*fsmBond{},
		pfs:      map[string]*fsmPF{},
		names:    map[int]string{},
	}
	for _, b := range bonds {
		fb := &fsmBond{name: b.Bond, active: b.Active}
		for i, ps := range b.Ports {
			fb.pfs[i] = ps.PF
			f.pfs[ps.PF] = &fsmPF{name: ps.PF, bond: b.Bond, up: ps.Carrier}
		}
		f.bonds[b.Bond] = fb
	}
	return f
}

// Feed takes one link message and returns the events it causes, after
// the events of hold-downs that ended by msg.At, and when Tick must next
// be called (zero: no hold-down pending).
func (f *FSM) Feed(msg LinkMsg) ([]Event, time.Time) {
	evs := f.mature(msg.At)
	if msg.Index > 0 {
		if msg.Deleted {
			delete(f.names, msg.Index)
		} else if msg.Name != "" {
			f.names[msg.Index] = msg.Name
			for _, b := range f.sortedBonds() {
				if b.pendingActive == msg.Index {
					b.pendingActive = 0
					evs = append(evs, b.setActive(msg.Name, msg.At)...)
				}
			}
		}
	}
	if msg.IsBond {
		if b, ok := f.bonds[msg.Name]; ok {
			evs = append(evs, f.bondMsg(b, msg)...)
		}
	} else if pf, ok := f.pfs[msg.Name]; ok {
		evs = append(evs, f.pfMsg(pf, msg)...)
	}
	return evs, f.next()
}

// Tick returns the CarrierRegained events whose hold-down ended by now,
// in time order, and when Tick must next be called (zero: never).
func (f *FSM) Tick(now time.Time) ([]Event, time.Time) {
	return f.mature(now), f.next()
}

// bondMsg handles a message about a managed bond.
func (f *FSM) bondMsg(b *fsmBond, msg LinkMsg) []Event {
	name := msg.ActiveSlave
	switch {
	case msg.Deleted:
		name = ""
	case name == "" && msg.ActiveSlaveIndex > 0:
		n, ok := f.names[msg.ActiveSlaveIndex]
		if !ok {
			// Resolved when a message names that index.
			b.pendingActive = msg.ActiveSlaveIndex
			return nil
		}
		name = n
	}
	b.pendingActive = 0
	return b.setActive(name, msg.At)
}

// setActive records the bond's active port; a port that is not one of
// the bond's two managed PFs counts as none.
func (b *fsmBond) setActive(name string, at time.Time) []Event {
	if name != b.pfs[0] && name != b.pfs[1] {
		name = ""
	}
	if name == b.active {
		return nil
	}
	ev := Event{Kind: ActiveChanged, Bond: b.name, PF: name, From: b.active, At: at}
	b.active = name
	return []Event{ev}
}

// pfMsg handles a message about a managed PF.
func (f *FSM) pfMsg(pf *fsmPF, msg LinkMsg) []Event {
	master := msg.Master
	if master == "" && msg.MasterIndex > 0 {
		var ok bool
		if master, ok = f.names[msg.MasterIndex]; !ok {
			master = pf.bond // not seen yet: assume it is still its bond
		}
	}
	up := !msg.Deleted && msg.Carrier && msg.OperUp && master == pf.bond
	switch {
	case up && !pf.up && !pf.pending:
		if f.holdDown <= 0 {
			pf.up = true
			return []Event{{Kind: CarrierRegained, Bond: pf.bond, PF: pf.name, At: msg.At}}
		}
		pf.pending, pf.deadline = true, msg.At.Add(f.holdDown)
	case !up && pf.pending:
		pf.pending = false // flapped within the hold-down: never came back
	case !up && pf.up:
		pf.up = false
		return []Event{{Kind: CarrierLost, Bond: pf.bond, PF: pf.name, At: msg.At}}
	}
	return nil
}

// mature emits the regains whose hold-down ended by now.
func (f *FSM) mature(now time.Time) []Event {
	var ready []*fsmPF
	for _, pf := range f.pfs {
		if pf.pending && !pf.deadline.After(now) {
			ready = append(ready, pf)
		}
	}
	slices.SortFunc(ready, func(a, b *fsmPF) int {
		if c := a.deadline.Compare(b.deadline); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	evs := make([]Event, 0, len(ready))
	for _, pf := range ready {
		pf.pending, pf.up = false, true
		evs = append(evs, Event{Kind: CarrierRegained, Bond: pf.bond, PF: pf.name, At: pf.deadline})
	}
	return evs
}

// next returns the earliest pending deadline, or zero.
func (f *FSM) next() time.Time {
	var t time.Time
	for _, pf := range f.pfs {
		if pf.pending && (t.IsZero() || pf.deadline.Before(t)) {
			t = pf.deadline
		}
	}
	return t
}

// sortedBonds returns the bonds sorted by name.
func (f *FSM) sortedBonds() []*fsmBond {
	out := make([]*fsmBond, 0, len(f.bonds))
	for _, b := range f.bonds {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *fsmBond) int { return strings.Compare(a.name, b.name) })
	return out
}

// String renders what the FSM believes, one line per bond:
// "bond0 active pf1: pf0 down (regain at 10:00:00.200), pf1 up".
func (f *FSM) String() string {
	var s strings.Builder
	for _, b := range f.sortedBonds() {
		fmt.Fprintf(&s, "%s active %s:", b.name, orNone(b.active))
		for i, name := range b.pfs {
			if i > 0 {
				s.WriteString(",")
			}
			pf := f.pfs[name]
			switch {
			case pf.up:
				fmt.Fprintf(&s, " %s up", name)
			case pf.pending:
				fmt.Fprintf(&s, " %s down (regain at %s)", name, pf.deadline.Format("15:04:05.000"))
			default:
				fmt.Fprintf(&s, " %s down", name)
			}
		}
		s.WriteString("\n")
	}
	return s.String()
}
