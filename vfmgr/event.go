package vfmgr

import (
	"errors"
	"fmt"
	"time"
)

// ErrStale: the event no longer holds (a failback whose PF lost carrier
// again, or failback is off); its plan changes nothing.
var ErrStale = errors.New("stale event")

// EventKind is what happened to a bond.
type EventKind int

// The events the failover planner takes. The bond watcher (FSM) emits the
// first three; the daemon feeds FailbackDue back when a plan asks for it
// (Plan.Later) and Reconcile after start or a partly failed execution.
//
// There is no separate "hold-down expired" event: the FSM damps flapping
// itself and emits CarrierRegained only once the PF has held carrier for
// the hold-down; FailbackDue is the expiry of the (much longer) failback
// delay.
const (
	// ActiveChanged: the bond's active port changed from Event.From to
	// Event.PF ("" when the bond has no active port).
	ActiveChanged EventKind = iota + 1
	// CarrierLost: Event.PF lost carrier (or left the bond, or went away).
	CarrierLost
	// CarrierRegained: Event.PF has had carrier for the hold-down.
	CarrierRegained
	// FailbackDue: the failback delay after Event.PF regained carrier is
	// over; VMs may move back to it.
	FailbackDue
	// Reconcile: nothing changed, but the rules should be enforced again
	// (after daemon start, or when moves of an earlier plan failed).
	Reconcile
)

// String names the kind: "active-changed", "carrier-lost", ...
func (k EventKind) String() string {
	switch k {
	case ActiveChanged:
		return "active-changed"
	case CarrierLost:
		return "carrier-lost"
	case CarrierRegained:
		return "carrier-regained"
	case FailbackDue:
		return "failback-due"
	case Reconcile:
		return "reconcile"
	}
	return fmt.Sprintf("event-kind-%d", int(k))
}

// Event is something that happened to a managed bond.
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// Bond is the bond's name.
	Bond string
	// PF is the port concerned: the new active port for ActiveChanged
	// ("" when none), the PF that lost or regained carrier, the PF to fail
	// back to. Empty for Reconcile.
	PF string
	// From is the previous active port of an ActiveChanged ("" when none).
	From string
	// At is when it happened; for CarrierRegained, when the hold-down
	// ended.
	At time.Time
}

// String renders the event on one line:
// "10:00:00.000 bond0 active-changed pf0 -> pf1".
func (e Event) String() string {
	at := "--:--:--.---"
	if !e.At.IsZero() {
		at = e.At.Format("15:04:05.000")
	}
	switch e.Kind {
	case ActiveChanged:
		return fmt.Sprintf("%s %s %s %s -> %s", at, e.Bond, e.Kind, orNone(e.From), orNone(e.PF))
	case Reconcile:
		return fmt.Sprintf("%s %s %s", at, e.Bond, e.Kind)
	}
	return fmt.Sprintf("%s %s %s %s", at, e.Bond, e.Kind, e.PF)
}

// orNone renders an empty port name as "(none)".
func orNone(pf string) string {
	if pf == "" {
		return "(none)"
	}
	return pf
}
