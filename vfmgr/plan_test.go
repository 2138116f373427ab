package vfmgr

import (
	"errors"
	"testing"
	"time"
)

// ev is a shorthand for an event on bond0 at t0 + at ms.
func ev(kind EventKind, pf string, at int) Event {
	return Event{Kind: kind, Bond: "bond0", PF: pf, At: ms(at)}
}

// activeChanged is an ActiveChanged event on bond0.
func activeChanged(from, to string, at int) Event {
	e := ev(ActiveChanged, to, at)
	e.From = from
	return e
}

// stateWith returns bond0 built from o with VMs 1..vms allocated in order,
// then the events applied.
func stateWith(t testing.TB, o poolOpts, vms int, events ...Event) State {
	t.Helper()
	s := newTestState(t, newTestPool(t, o))
	mustAllocate(t, s, 1, vms)
	for _, e := range events {
		s = mustApply(t, s, e)
	}
	return s
}

func TestPlan(t *testing.T) {
	t.Parallel()
	af := poolOpts{policy: ActiveFirst}
	afFailback := poolOpts{policy: ActiveFirst, failback: 30 * time.Second}
	bal := poolOpts{policy: Balance}
	balFailback := poolOpts{policy: Balance, failback: 30 * time.Second}

	tests := []struct {
		name  string
		state func(t testing.TB) State
		ev    Event
		want  string
		skip  error // the error Plan.Skip wraps, if skipped
	}{
		{
			name: "active PF pulled: its VMs move with their settings",
			state: func(t testing.TB) State {
				s := newTestState(t, newTestPool(t, af))
				mustAllocate(t, s, 1, 1)
				r := vmReq(2)
				r.VLAN, r.QoS, r.Trust, r.Addrs = 100, 3, true, nil
				if _, err := s.Allocate(r); err != nil {
					t.Fatal(err)
				}
				mustAllocate(t, s, 3, 3)
				return s
			},
			ev: ev(CarrierLost, "pf0", 0),
			want: lines(
				"event 10:00:00.000 bond0 carrier-lost pf0",
				"status bond0 active-first active pf0: pf0 down 0/4, pf1 up 3/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf0 vf 0 (0000:01:10.0) -> pf1 vf 0 (0000:02:10.0): pf0 has no carrier",
				"move vm2/net0 52:54:00:00:00:02 vlan 100 qos 3 trust on: pf0 vf 1 (0000:01:10.1) -> pf1 vf 1 (0000:02:10.1): pf0 has no carrier",
				"move vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 trust off: pf0 vf 2 (0000:01:10.2) -> pf1 vf 2 (0000:02:10.2): pf0 has no carrier",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf1: 192.0.2.1",
				"announce vm2/net0 52:54:00:00:00:02 vlan 100 qos 3 on pf1: no addresses",
				"announce vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 on pf1: 192.0.2.3"),
		},
		{
			name: "libvirt interfaces vflagd cannot re-home keep their VF, and say so when cut off",
			state: func(t testing.TB) State {
				s := newTestState(t, newTestPool(t, af))
				mustAllocate(t, s, 1, 1)
				for n, m := range []Mode{2: ModeAdopt, 3: ModeHotswap} {
					if m == "" {
						continue
					}
					r := vmReq(n)
					r.Mode = m
					if _, err := s.Allocate(r); err != nil {
						t.Fatal(err)
					}
				}
				return s
			},
			ev: ev(CarrierLost, "pf0", 0),
			want: lines(
				"event 10:00:00.000 bond0 carrier-lost pf0",
				"status bond0 active-first active pf0: pf0 down 2/4, pf1 up 1/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf0 vf 0 (0000:01:10.0) -> pf1 vf 0 (0000:02:10.0): pf0 has no carrier",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf1: 192.0.2.1",
				"unplaceable vm2/net0 52:54:00:00:00:02 on pf0 vf 1 (stranded): pf0 has no carrier and its VF was placed by someone else (mode adopt): vflag does not move it",
				"unplaceable vm3/net0 52:54:00:00:00:03 on pf0 vf 2 (stranded): pf0 has no carrier and vflagd's libvirt side is off (libvirt not installed, or libvirt: enabled: false), so it cannot hand the VM (mode hotswap) another VF"),
		},
		{
			name: "with vflagd's libvirt side on, failover and hotswap interfaces move; adopted ones stay",
			state: func(t testing.TB) State {
				lv := af
				lv.libvirt = true
				s := newTestState(t, newTestPool(t, lv))
				for n, m := range []Mode{1: ModeFailover, 2: ModeAdopt, 3: ModeHotswap} {
					if n == 0 {
						continue
					}
					r := vmReq(n)
					r.Mode = m
					if _, err := s.Allocate(r); err != nil {
						t.Fatal(err)
					}
				}
				return s
			},
			ev: ev(CarrierLost, "pf0", 0),
			want: lines(
				"event 10:00:00.000 bond0 carrier-lost pf0",
				"status bond0 active-first active pf0: pf0 down 1/4, pf1 up 2/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf0 vf 0 (0000:01:10.0) -> pf1 vf 0 (0000:02:10.0): pf0 has no carrier",
				"move vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 trust off: pf0 vf 2 (0000:01:10.2) -> pf1 vf 1 (0000:02:10.1): pf0 has no carrier",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf1: 192.0.2.1",
				"announce vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 on pf1: 192.0.2.3",
				"unplaceable vm2/net0 52:54:00:00:00:02 on pf0 vf 1 (stranded): pf0 has no carrier and its VF was placed by someone else (mode adopt): vflag does not move it"),
		},
		{
			name:  "bond leaves the active PF before its carrier drops: VMs follow at once",
			state: func(t testing.TB) State { return stateWith(t, af, 2) },
			ev:    activeChanged("pf0", "pf1", 0),
			want: lines(
				"event 10:00:00.000 bond0 active-changed pf0 -> pf1",
				"status bond0 active-first active pf1: pf0 up 0/4, pf1 up 2/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf0 vf 0 (0000:01:10.0) -> pf1 vf 0 (0000:02:10.0): bond0 active pf0 -> pf1",
				"move vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off: pf0 vf 1 (0000:01:10.1) -> pf1 vf 1 (0000:02:10.1): bond0 active pf0 -> pf1",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf1: 192.0.2.1",
				"announce vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 on pf1: 192.0.2.2"),
		},
		{
			name:  "the bond's active change after the carrier loss moves nothing more",
			state: func(t testing.TB) State { return stateWith(t, af, 2, ev(CarrierLost, "pf0", 0)) },
			ev:    activeChanged("pf0", "pf1", 1),
			want: lines(
				"event 10:00:00.001 bond0 active-changed pf0 -> pf1",
				"status bond0 active-first active pf1: pf0 down 0/4, pf1 up 2/4"),
		},
		{
			name:  "backup PF pulled: no moves",
			state: func(t testing.TB) State { return stateWith(t, af, 3) },
			ev:    ev(CarrierLost, "pf1", 0),
			want: lines(
				"event 10:00:00.000 bond0 carrier-lost pf1",
				"status bond0 active-first active pf0: pf0 up 3/4, pf1 down 0/4"),
		},
		{
			name: "backup PF pulled: spilled VMs move to the active PF's free VFs",
			state: func(t testing.TB) State {
				s := stateWith(t, poolOpts{policy: ActiveFirst, vfs: [2]int{2, 4}}, 3)
				if _, err := s.Release("vm1/net0"); err != nil {
					t.Fatal(err)
				}
				return s
			},
			ev: ev(CarrierLost, "pf1", 0),
			want: lines(
				"event 10:00:00.000 bond0 carrier-lost pf1",
				"status bond0 active-first active pf0: pf0 up 2/2, pf1 down 0/4",
				"move vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 trust off: pf1 vf 0 (0000:02:10.0) -> pf0 vf 0 (0000:01:10.0): pf1 has no carrier",
				"announce vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 on pf0: 192.0.2.3"),
		},
		{
			name:  "both PFs pulled: the VMs are stranded, not dropped",
			state: func(t testing.TB) State { return stateWith(t, af, 2, ev(CarrierLost, "pf1", 0)) },
			ev:    ev(CarrierLost, "pf0", 10),
			want: lines(
				"event 10:00:00.010 bond0 carrier-lost pf0",
				"status bond0 active-first active pf0: pf0 down 2/4, pf1 down 0/4",
				"unplaceable vm1/net0 52:54:00:00:00:01 on pf0 vf 0 (stranded): pf0 and pf1 have no carrier",
				"unplaceable vm2/net0 52:54:00:00:00:02 on pf0 vf 1 (stranded): pf0 and pf1 have no carrier"),
		},
		{
			name: "after both were pulled, the first PF back takes the stranded VMs",
			state: func(t testing.TB) State {
				return stateWith(t, af, 2, ev(CarrierLost, "pf1", 0), ev(CarrierLost, "pf0", 10))
			},
			ev: ev(CarrierRegained, "pf1", 1000),
			want: lines(
				"event 10:00:01.000 bond0 carrier-regained pf1",
				"status bond0 active-first active pf0: pf0 down 0/4, pf1 up 2/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf0 vf 0 (0000:01:10.0) -> pf1 vf 0 (0000:02:10.0): pf0 has no carrier",
				"move vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off: pf0 vf 1 (0000:01:10.1) -> pf1 vf 1 (0000:02:10.1): pf0 has no carrier",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf1: 192.0.2.1",
				"announce vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 on pf1: 192.0.2.2"),
		},
		{
			name:  "surviving PF partly full: as many as fit move, by key",
			state: func(t testing.TB) State { return stateWith(t, bal, 6) },
			ev:    ev(CarrierLost, "pf0", 0),
			want: lines(
				"event 10:00:00.000 bond0 carrier-lost pf0",
				"status bond0 balance active pf0: pf0 down 2/4, pf1 up 4/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf0 vf 0 (0000:01:10.0) -> pf1 vf 3 (0000:02:10.3): pf0 has no carrier",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf1: 192.0.2.1",
				"unplaceable vm3/net0 52:54:00:00:00:03 on pf0 vf 1 (stranded): no free VF on pf1 (4/4 used)",
				"unplaceable vm5/net0 52:54:00:00:00:05 on pf0 vf 2 (stranded): no free VF on pf1 (4/4 used)"),
		},
		{
			name:  "surviving PF full: nothing moves, all stranded",
			state: func(t testing.TB) State { return stateWith(t, poolOpts{policy: ActiveFirst, vfs: [2]int{2, 2}}, 4) },
			ev:    ev(CarrierLost, "pf0", 0),
			want: lines(
				"event 10:00:00.000 bond0 carrier-lost pf0",
				"status bond0 active-first active pf0: pf0 down 2/2, pf1 up 2/2",
				"unplaceable vm1/net0 52:54:00:00:00:01 on pf0 vf 0 (stranded): no free VF on pf1 (2/2 used)",
				"unplaceable vm2/net0 52:54:00:00:00:02 on pf0 vf 1 (stranded): no free VF on pf1 (2/2 used)"),
		},
		{
			name: "plugged back, failback never: nothing moves, nothing scheduled",
			state: func(t testing.TB) State {
				return stateWith(t, bal, 4, ev(CarrierLost, "pf0", 0))
			},
			ev: ev(CarrierRegained, "pf0", 5000),
			want: lines(
				"event 10:00:05.000 bond0 carrier-regained pf0",
				"status bond0 balance active pf0: pf0 up 0/4, pf1 up 4/4"),
		},
		{
			name: "plugged back, balance with failback after 30s: nothing moves yet",
			state: func(t testing.TB) State {
				return stateWith(t, balFailback, 4, ev(CarrierLost, "pf0", 0))
			},
			ev: ev(CarrierRegained, "pf0", 5000),
			want: lines(
				"event 10:00:05.000 bond0 carrier-regained pf0",
				"status bond0 balance active pf0: pf0 up 0/4, pf1 up 4/4",
				"later 10:00:35.000 bond0 failback-due pf0"),
		},
		{
			name: "balance failback: the VMs placed on the PF go home",
			state: func(t testing.TB) State {
				return stateWith(t, balFailback, 4, ev(CarrierLost, "pf0", 0), ev(CarrierRegained, "pf0", 5000))
			},
			ev: ev(FailbackDue, "pf0", 35000),
			want: lines(
				"event 10:00:35.000 bond0 failback-due pf0",
				"status bond0 balance active pf0: pf0 up 2/4, pf1 up 2/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf1 vf 2 (0000:02:10.2) -> pf0 vf 0 (0000:01:10.0): failback to home pf0",
				"move vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 trust off: pf1 vf 3 (0000:02:10.3) -> pf0 vf 1 (0000:01:10.1): failback to home pf0",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf0: 192.0.2.1",
				"announce vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 on pf0: 192.0.2.3"),
		},
		{
			name: "balance failback when the home PF filled up meanwhile",
			state: func(t testing.TB) State {
				s := stateWith(t, poolOpts{policy: Balance, failback: 30 * time.Second, vfs: [2]int{2, 4}}, 4,
					ev(CarrierLost, "pf0", 0), ev(CarrierRegained, "pf0", 5000))
				mustAllocate(t, s, 5, 5) // to pf0: it has fewer VMs
				return s
			},
			ev: ev(FailbackDue, "pf0", 35000),
			want: lines(
				"event 10:00:35.000 bond0 failback-due pf0",
				"status bond0 balance active pf0: pf0 up 2/2, pf1 up 3/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf1 vf 2 (0000:02:10.2) -> pf0 vf 1 (0000:01:10.1): failback to home pf0",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf0: 192.0.2.1",
				"unplaceable vm3/net0 52:54:00:00:00:03 on pf1 vf 3 (reachable): no free VF on pf0 (2/2 used), stays on pf1"),
		},
		{
			name: "failback due, but the PF flapped since: stale",
			state: func(t testing.TB) State {
				return stateWith(t, balFailback, 4, ev(CarrierLost, "pf0", 0), ev(CarrierRegained, "pf0", 5000),
					ev(CarrierLost, "pf0", 10000), ev(CarrierRegained, "pf0", 12000))
			},
			ev:   ev(FailbackDue, "pf0", 35000),
			skip: ErrStale,
			want: lines(
				"event 10:00:35.000 bond0 failback-due pf0",
				"skip: fail back to pf0 on bond0: carrier only since 10:00:12.000, failback after 30s: stale event"),
		},
		{
			name: "failback due, but the PF is down again: stale",
			state: func(t testing.TB) State {
				return stateWith(t, balFailback, 4, ev(CarrierLost, "pf0", 0), ev(CarrierRegained, "pf0", 5000),
					ev(CarrierLost, "pf0", 10000))
			},
			ev:   ev(FailbackDue, "pf0", 35000),
			skip: ErrStale,
			want: lines(
				"event 10:00:35.000 bond0 failback-due pf0",
				"skip: fail back to pf0 on bond0: no carrier: stale event"),
		},
		{
			name: "failback due with failback never: skipped",
			state: func(t testing.TB) State {
				return stateWith(t, bal, 4, ev(CarrierLost, "pf0", 0), ev(CarrierRegained, "pf0", 5000))
			},
			ev:   ev(FailbackDue, "pf0", 35000),
			skip: ErrStale,
			want: lines(
				"event 10:00:35.000 bond0 failback-due pf0",
				"skip: fail back to pf0 on bond0: failback is off: stale event"),
		},
		{
			name: "active-first, bond fails back during the hold-down: VMs stay on the healthy PF",
			state: func(t testing.TB) State {
				return stateWith(t, afFailback, 3, ev(CarrierLost, "pf0", 0), activeChanged("pf0", "pf1", 1))
			},
			ev: activeChanged("pf1", "pf0", 3000),
			want: lines(
				"event 10:00:03.000 bond0 active-changed pf1 -> pf0",
				"status bond0 active-first active pf0: pf0 down 0/4, pf1 up 3/4"),
		},
		{
			name: "active-first, the active PF regains carrier: failback scheduled",
			state: func(t testing.TB) State {
				return stateWith(t, afFailback, 3, ev(CarrierLost, "pf0", 0), activeChanged("pf0", "pf1", 1),
					activeChanged("pf1", "pf0", 3000))
			},
			ev: ev(CarrierRegained, "pf0", 3200),
			want: lines(
				"event 10:00:03.200 bond0 carrier-regained pf0",
				"status bond0 active-first active pf0: pf0 up 0/4, pf1 up 3/4",
				"later 10:00:33.200 bond0 failback-due pf0"),
		},
		{
			name: "active-first failback: everything moves to the active PF",
			state: func(t testing.TB) State {
				return stateWith(t, afFailback, 3, ev(CarrierLost, "pf0", 0), activeChanged("pf0", "pf1", 1),
					activeChanged("pf1", "pf0", 3000), ev(CarrierRegained, "pf0", 3200))
			},
			ev: ev(FailbackDue, "pf0", 33200),
			want: lines(
				"event 10:00:33.200 bond0 failback-due pf0",
				"status bond0 active-first active pf0: pf0 up 3/4, pf1 up 0/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf1 vf 0 (0000:02:10.0) -> pf0 vf 0 (0000:01:10.0): failback to active pf0",
				"move vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off: pf1 vf 1 (0000:02:10.1) -> pf0 vf 1 (0000:01:10.1): failback to active pf0",
				"move vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 trust off: pf1 vf 2 (0000:02:10.2) -> pf0 vf 2 (0000:01:10.2): failback to active pf0",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf0: 192.0.2.1",
				"announce vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 on pf0: 192.0.2.2",
				"announce vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 on pf0: 192.0.2.3"),
		},
		{
			name: "active-first, the PF comes back as backup: the VMs are on the active PF already",
			state: func(t testing.TB) State {
				return stateWith(t, afFailback, 3, ev(CarrierLost, "pf0", 0), activeChanged("pf0", "pf1", 1))
			},
			ev: ev(CarrierRegained, "pf0", 3200),
			want: lines(
				"event 10:00:03.200 bond0 carrier-regained pf0",
				"status bond0 active-first active pf1: pf0 up 0/4, pf1 up 3/4"),
		},
		{
			name: "active-first failback due for the backup PF: nothing moves",
			state: func(t testing.TB) State {
				return stateWith(t, afFailback, 3, ev(CarrierLost, "pf0", 0), activeChanged("pf0", "pf1", 1),
					ev(CarrierRegained, "pf0", 3200))
			},
			ev: ev(FailbackDue, "pf0", 33200),
			want: lines(
				"event 10:00:33.200 bond0 failback-due pf0",
				"status bond0 active-first active pf1: pf0 up 0/4, pf1 up 3/4"),
		},
		{
			name:  "balance: an active change alone moves nothing",
			state: func(t testing.TB) State { return stateWith(t, bal, 4) },
			ev:    activeChanged("pf0", "pf1", 0),
			want: lines(
				"event 10:00:00.000 bond0 active-changed pf0 -> pf1",
				"status bond0 balance active pf1: pf0 up 2/4, pf1 up 2/4"),
		},
		{
			name: "reconcile after adopting a VM on a PF without carrier",
			state: func(t testing.TB) State {
				s := newTestState(t, newTestPool(t, poolOpts{down: [2]bool{true, false}}))
				if err := s.Adopt(Allocation{VM: "vm1", Iface: "net0", MAC: testMAC(1), Bond: "bond0", VF: VFRef{PF: "pf0", Index: 3}}); err != nil {
					t.Fatal(err)
				}
				return s
			},
			ev: Event{Kind: Reconcile, Bond: "bond0", At: ms(0)},
			want: lines(
				"event 10:00:00.000 bond0 reconcile",
				"status bond0 active-first active pf0: pf0 down 0/4, pf1 up 1/4",
				"move vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off: pf0 vf 3 (0000:01:10.3) -> pf1 vf 0 (0000:02:10.0): pf0 has no carrier",
				"announce vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 on pf1: no addresses"),
		},
		{
			name:  "unmanaged bond",
			state: func(t testing.TB) State { return stateWith(t, af, 1) },
			ev:    Event{Kind: CarrierLost, Bond: "bond9", PF: "pf0", At: ms(0)},
			skip:  ErrNotManaged,
			want: lines(
				"event 10:00:00.000 bond9 carrier-lost pf0",
				`skip: carrier-lost: bond "bond9": not managed by vflag`),
		},
		{
			name:  "unmanaged PF",
			state: func(t testing.TB) State { return stateWith(t, af, 1) },
			ev:    ev(CarrierLost, "eth0", 0),
			skip:  ErrNotManaged,
			want: lines(
				"event 10:00:00.000 bond0 carrier-lost eth0",
				`skip: carrier-lost on bond0: "eth0" is not a port of it: not managed by vflag`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tt.state(t)
			before := s.String()
			pl := s.Plan(tt.ev)
			diff(t, "plan", pl.String(), tt.want)
			if !errors.Is(pl.Skip, tt.skip) || tt.skip == nil && pl.Skip != nil {
				t.Errorf("skip = %v, want %v", pl.Skip, tt.skip)
			}
			diff(t, "state after Plan (must not change)", s.String(), before)

			next := s.Apply(pl)
			diff(t, "state after Apply (must not change)", s.String(), before)
			checkInvariants(t, next, &pl)
			if got, want := len(next.Allocations()), len(s.Allocations()); got != want {
				t.Errorf("%d allocations after Apply, want %d", got, want)
			}
			for _, m := range pl.Moves {
				a, _ := next.Allocation(m.Key)
				if a.VF != m.To || !a.Since.Equal(tt.ev.At) {
					t.Errorf("%s on %s since %s after Apply, want %s since %s", m.Key, a.VF, a.Since, m.To, tt.ev.At)
				}
			}
			if pl.Skip == nil {
				p, _ := next.Pool(tt.ev.Bond)
				if got := p.Status(); got.String() != pl.Status.String() {
					t.Errorf("status after Apply %q, plan said %q", got, pl.Status)
				}
			}
		})
	}
}

// TestPlanStrandedNotRepeated checks that a VM reported stranded by the
// failover rule is not reported again by a later rule of the same plan
// (here the active-first failback, which also wants pf1's VMs on pf0).
func TestPlanStrandedNotRepeated(t *testing.T) {
	t.Parallel()
	s := stateWith(t, poolOpts{policy: ActiveFirst, failback: 30 * time.Second, vfs: [2]int{2, 2}}, 4,
		ev(CarrierLost, "pf1", 0))
	pl := s.Plan(ev(FailbackDue, "pf0", 40000))
	diff(t, "plan", pl.String(), lines(
		"event 10:00:40.000 bond0 failback-due pf0",
		"status bond0 active-first active pf0: pf0 up 2/2, pf1 down 2/2",
		"unplaceable vm3/net0 52:54:00:00:00:03 on pf1 vf 0 (stranded): no free VF on pf0 (2/2 used)",
		"unplaceable vm4/net0 52:54:00:00:00:04 on pf1 vf 1 (stranded): no free VF on pf0 (2/2 used)"))
}

// TestApplyPartialPlan checks the executor's path when some moves failed:
// applying only the moves carried out, then a Reconcile plan retries the
// rest.
func TestApplyPartialPlan(t *testing.T) {
	t.Parallel()
	s := stateWith(t, poolOpts{policy: ActiveFirst}, 3)
	pl := s.Plan(ev(CarrierLost, "pf0", 0))
	if len(pl.Moves) != 3 {
		t.Fatalf("plan:\n%s want 3 moves", pl)
	}
	done := pl
	done.Moves = pl.Moves[:1] // vm2 and vm3 failed
	s = s.Apply(done)
	checkInvariants(t, s, nil)
	retry := s.Plan(Event{Kind: Reconcile, Bond: "bond0", At: ms(50)})
	want := lines(
		"event 10:00:00.050 bond0 reconcile",
		"status bond0 active-first active pf0: pf0 down 0/4, pf1 up 3/4",
		"move vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off: pf0 vf 1 (0000:01:10.1) -> pf1 vf 1 (0000:02:10.1): pf0 has no carrier",
		"move vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 trust off: pf0 vf 2 (0000:01:10.2) -> pf1 vf 2 (0000:02:10.2): pf0 has no carrier",
		"announce vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 on pf1: 192.0.2.2",
		"announce vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 on pf1: 192.0.2.3")
	diff(t, "reconcile plan", retry.String(), want)

	// A move that no longer fits (its VM left meanwhile) is left out.
	if _, err := s.Release("vm2/net0"); err != nil {
		t.Fatal(err)
	}
	s = s.Apply(retry)
	checkInvariants(t, s, nil)
	p, _ := s.Pool("bond0")
	diff(t, "pool", p.String(), lines(
		"bond0 active-first active pf0: pf0 down 0/4, pf1 up 2/4",
		"  pf0: -",
		"  pf1: vf0 vm1/net0, vf2 vm3/net0"))
}

// TestFailoverRoundTrip runs a whole cable pull and plug under each
// policy and failback setting and checks where the VMs end up.
func TestFailoverRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts poolOpts
		want string // the pool at the end
	}{
		{
			name: "active-first, failback never: VMs stay on the surviving PF",
			opts: poolOpts{policy: ActiveFirst},
			want: lines(
				"bond0 active-first active pf1: pf0 up 0/4, pf1 up 3/4",
				"  pf0: -",
				"  pf1: vf0 vm1/net0, vf1 vm2/net0, vf2 vm3/net0"),
		},
		{
			name: "balance, failback never: VMs stay where failover put them",
			opts: poolOpts{policy: Balance},
			want: lines(
				"bond0 balance active pf1: pf0 up 0/4, pf1 up 3/4",
				"  pf0: -",
				"  pf1: vf0 vm2/net0, vf1 vm1/net0, vf2 vm3/net0"),
		},
		{
			name: "balance, failback after 30s: VMs go home",
			opts: poolOpts{policy: Balance, failback: 30 * time.Second},
			want: lines(
				"bond0 balance active pf1: pf0 up 2/4, pf1 up 1/4",
				"  pf0: vf0 vm1/net0, vf1 vm3/net0",
				"  pf1: vf0 vm2/net0"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := stateWith(t, tt.opts, 3)
			events := []Event{ev(CarrierLost, "pf0", 0), activeChanged("pf0", "pf1", 1), ev(CarrierRegained, "pf0", 5000)}
			for len(events) > 0 {
				e := events[0]
				events = events[1:]
				pl := s.Plan(e)
				events = append(events, pl.Later...)
				s = s.Apply(pl)
				checkInvariants(t, s, &pl)
			}
			p, _ := s.Pool("bond0")
			diff(t, "pool", p.String(), tt.want)
		})
	}
}
