package vfmgr

import (
	"strings"
	"testing"
	"time"
)

// The canned links: bond0 (ifindex 10) over pf0 (2) and pf1 (3); eth0 (4)
// and bond1 (11) over pf9 (5) are not managed.
const (
	idxPF0, idxPF1, idxEth0, idxPF9 = 2, 3, 4, 5
	idxBond0, idxBond1              = 10, 11
)

// step is one input of a canned sequence: a message, or a Tick.
type step struct {
	msg  LinkMsg
	tick bool
}

// slave is a message about a bond0 slave with carrier and operstate up.
func slave(name string, up bool, at int) step {
	idx := map[string]int{"pf0": idxPF0, "pf1": idxPF1, "eth0": idxEth0, "pf9": idxPF9}[name]
	return step{msg: LinkMsg{Index: idx, Name: name, Master: "bond0", Carrier: up, OperUp: up, At: ms(at)}}
}

// bond is a message about bond0 with the given active slave index.
func bond(active, at int) step {
	return step{msg: LinkMsg{Index: idxBond0, Name: "bond0", IsBond: true, ActiveSlaveIndex: active, Carrier: true, OperUp: true, At: ms(at)}}
}

// with changes a step's message.
func (s step) with(f func(*LinkMsg)) step { f(&s.msg); return s }

// tick is a call of Tick at t0 + at ms.
func tick(at int) step { return step{msg: LinkMsg{At: ms(at)}, tick: true} }

// dump is what the socket reader feeds at start: every link once.
func dump(at int, pf0, pf1 bool, active int) []step {
	return []step{slave("pf0", pf0, at), slave("pf1", pf1, at), bond(active, at)}
}

// bond0Status is bond0's status as a State would report it.
func bond0Status(active string, pf0, pf1 bool) BondStatus {
	return BondStatus{Bond: "bond0", Active: active, Ports: [2]PortStatus{{PF: "pf0", Carrier: pf0}, {PF: "pf1", Carrier: pf1}}}
}

// run feeds the steps to f and returns the events, one line each.
func run(f *FSM, steps []step) string {
	var b strings.Builder
	for _, s := range steps {
		var evs []Event
		if s.tick {
			evs, _ = f.Tick(s.msg.At)
		} else {
			evs, _ = f.Feed(s.msg)
		}
		for _, e := range evs {
			b.WriteString(e.String() + "\n")
		}
	}
	return b.String()
}

// flaps returns n down/up cycles of pf0 from at, period apart, the bond
// switching to pf1 when pf0 goes down and back to pf0 (its primary) when it
// comes up; the last cycle ends down when endDown is set.
func flaps(n, at, period int, endDown bool) []step {
	var out []step
	for i := range n {
		t := at + i*period
		out = append(out, slave("pf0", false, t), bond(idxPF1, t))
		if i < n-1 || !endDown {
			out = append(out, slave("pf0", true, t+period/2), bond(idxPF0, t+period/2))
		}
	}
	return out
}

func TestFSM(t *testing.T) {
	t.Parallel()
	up := bond0Status("pf0", true, true)
	pf0Down := bond0Status("pf1", false, true)
	tests := []struct {
		name      string
		holdDown  time.Duration
		initial   BondStatus
		steps     []step
		want      string // the events
		wantState string // FSM.String() at the end
	}{
		{
			name:      "the dump at start matches: nothing",
			initial:   up,
			steps:     dump(0, true, true, idxPF0),
			wantState: "bond0 active pf0: pf0 up, pf1 up\n",
		},
		{
			name:    "the dump at start differs: events at once",
			initial: up,
			steps:   dump(0, false, true, idxPF1),
			want: lines(
				"10:00:00.000 bond0 carrier-lost pf0",
				"10:00:00.000 bond0 active-changed pf0 -> pf1"),
			wantState: "bond0 active pf1: pf0 down, pf1 up\n",
		},
		{
			name:    "cable pull on the active PF",
			initial: up,
			steps:   append(dump(0, true, true, idxPF0), slave("pf0", false, 1000), bond(idxPF1, 1001)),
			want: lines(
				"10:00:01.000 bond0 carrier-lost pf0",
				"10:00:01.001 bond0 active-changed pf0 -> pf1"),
			wantState: "bond0 active pf1: pf0 down, pf1 up\n",
		},
		{
			name:      "active slave whose index is not known yet: resolved when it is named",
			initial:   up,
			steps:     []step{bond(idxPF1, 0), slave("pf1", true, 5)},
			want:      lines("10:00:00.005 bond0 active-changed pf0 -> pf1"),
			wantState: "bond0 active pf1: pf0 up, pf1 up\n",
		},
		{
			name:      "active slave named by the reader",
			initial:   up,
			steps:     []step{bond(0, 7).with(func(m *LinkMsg) { m.ActiveSlave = "pf1" })},
			want:      lines("10:00:00.007 bond0 active-changed pf0 -> pf1"),
			wantState: "bond0 active pf1: pf0 up, pf1 up\n",
		},
		{
			name:      "bond without an active slave",
			initial:   up,
			steps:     append(dump(0, true, true, idxPF0), bond(0, 10)),
			want:      lines("10:00:00.010 bond0 active-changed pf0 -> (none)"),
			wantState: "bond0 active (none): pf0 up, pf1 up\n",
		},
		{
			name:      "active slave that is not a managed PF counts as none",
			initial:   up,
			steps:     []step{slave("eth0", true, 0), bond(idxEth0, 10)},
			want:      lines("10:00:00.010 bond0 active-changed pf0 -> (none)"),
			wantState: "bond0 active (none): pf0 up, pf1 up\n",
		},
		{
			name:      "a regain is held for the hold-down",
			holdDown:  200 * time.Millisecond,
			initial:   pf0Down,
			steps:     []step{slave("pf0", true, 100), tick(250), tick(300)},
			want:      lines("10:00:00.300 bond0 carrier-regained pf0"),
			wantState: "bond0 active pf1: pf0 up, pf1 up\n",
		},
		{
			name:      "a regain still held",
			holdDown:  200 * time.Millisecond,
			initial:   pf0Down,
			steps:     []step{slave("pf0", true, 100), slave("pf0", true, 150), tick(299)},
			wantState: "bond0 active pf1: pf0 down (regain at 10:00:00.300), pf1 up\n",
		},
		{
			name:      "a loss within the hold-down drops the regain",
			holdDown:  200 * time.Millisecond,
			initial:   pf0Down,
			steps:     []step{slave("pf0", true, 100), slave("pf0", false, 200), tick(1000)},
			wantState: "bond0 active pf1: pf0 down, pf1 up\n",
		},
		{
			name:     "a regain that matured before the next message comes first",
			holdDown: 200 * time.Millisecond,
			initial:  pf0Down,
			steps:    []step{slave("pf0", true, 100), slave("pf0", false, 500)},
			want: lines(
				"10:00:00.300 bond0 carrier-regained pf0",
				"10:00:00.500 bond0 carrier-lost pf0"),
			wantState: "bond0 active pf1: pf0 down, pf1 up\n",
		},
		{
			name:     "two regains come in time order",
			holdDown: 200 * time.Millisecond,
			initial:  bond0Status("", false, false),
			steps:    []step{slave("pf1", true, 100), slave("pf0", true, 150), tick(1000)},
			want: lines(
				"10:00:00.300 bond0 carrier-regained pf1",
				"10:00:00.350 bond0 carrier-regained pf0"),
			wantState: "bond0 active (none): pf0 up, pf1 up\n",
		},
		{
			name:      "no hold-down: a regain at once",
			initial:   pf0Down,
			steps:     []step{slave("pf0", true, 100)},
			want:      lines("10:00:00.100 bond0 carrier-regained pf0"),
			wantState: "bond0 active pf1: pf0 up, pf1 up\n",
		},
		{
			name:      "repeats emit nothing",
			holdDown:  200 * time.Millisecond,
			initial:   up,
			steps:     append(append(dump(0, true, true, idxPF0), dump(10, true, true, idxPF0)...), slave("pf1", true, 20)),
			wantState: "bond0 active pf0: pf0 up, pf1 up\n",
		},
		{
			name:    "unmanaged links and bonds are ignored",
			initial: up,
			steps: []step{
				slave("eth0", false, 0).with(func(m *LinkMsg) { m.Master = "" }),
				{msg: LinkMsg{Index: idxBond1, Name: "bond1", IsBond: true, ActiveSlaveIndex: idxPF9, At: ms(1)}},
				slave("pf9", false, 2).with(func(m *LinkMsg) { m.Master = "bond1" }),
			},
			wantState: "bond0 active pf0: pf0 up, pf1 up\n",
		},
		{
			name:      "a PF released from the bond is down",
			initial:   up,
			steps:     []step{slave("pf1", true, 0).with(func(m *LinkMsg) { m.Master = "" })},
			want:      lines("10:00:00.000 bond0 carrier-lost pf1"),
			wantState: "bond0 active pf0: pf0 up, pf1 down\n",
		},
		{
			name:    "master given by index",
			initial: up,
			steps: []step{
				bond(idxPF0, 0),
				{msg: LinkMsg{Index: idxBond1, Name: "bond1", IsBond: true, At: ms(0)}},
				slave("pf0", true, 1).with(func(m *LinkMsg) { m.Master, m.MasterIndex = "", idxBond0 }),
				slave("pf1", true, 2).with(func(m *LinkMsg) { m.Master, m.MasterIndex = "", 99 }),       // unknown: assumed bond0
				slave("pf1", true, 3).with(func(m *LinkMsg) { m.Master, m.MasterIndex = "", idxBond1 }), // moved to bond1
			},
			want:      lines("10:00:00.003 bond0 carrier-lost pf1"),
			wantState: "bond0 active pf0: pf0 up, pf1 down\n",
		},
		{
			name:      "a deleted PF is down",
			initial:   up,
			steps:     []step{slave("pf1", true, 0).with(func(m *LinkMsg) { m.Deleted = true })},
			want:      lines("10:00:00.000 bond0 carrier-lost pf1"),
			wantState: "bond0 active pf0: pf0 up, pf1 down\n",
		},
		{
			name:      "operstate down with carrier is down",
			initial:   up,
			steps:     []step{slave("pf1", true, 0).with(func(m *LinkMsg) { m.OperUp = false })},
			want:      lines("10:00:00.000 bond0 carrier-lost pf1"),
			wantState: "bond0 active pf0: pf0 up, pf1 down\n",
		},
		{
			name:      "a deleted bond has no active port",
			initial:   up,
			steps:     []step{bond(idxPF0, 0).with(func(m *LinkMsg) { m.Deleted = true })},
			want:      lines("10:00:00.000 bond0 active-changed pf0 -> (none)"),
			wantState: "bond0 active (none): pf0 up, pf1 up\n",
		},
		{
			name:      "20 flaps in 5 s ending up: one loss, active changes, one regain",
			holdDown:  200 * time.Millisecond,
			initial:   up,
			steps:     append(append(dump(0, true, true, idxPF0), flaps(20, 1000, 250, false)...), tick(6000), tick(6075)),
			want:      flapWant(20, 1000, 250, false) + lines("10:00:06.075 bond0 carrier-regained pf0"),
			wantState: "bond0 active pf0: pf0 up, pf1 up\n",
		},
		{
			name:     "20 flaps in 5 s ending down: one loss, no regain",
			holdDown: 200 * time.Millisecond,
			initial:  up,
			steps:    append(append(dump(0, true, true, idxPF0), flaps(20, 1000, 250, true)...), tick(7000)),
			want:     flapWant(20, 1000, 250, true),
			// The bond's last word is pf1.
			wantState: "bond0 active pf1: pf0 down, pf1 up\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := NewFSM(tt.holdDown, tt.initial)
			diff(t, "events", run(f, tt.steps), tt.want)
			diff(t, "FSM", f.String(), tt.wantState)
		})
	}
}

// flapWant is what flaps(n, at, period, endDown) emits before any final
// regain: pf0's loss once, and every active change at once.
func flapWant(n, at, period int, endDown bool) string {
	at0 := func(t int) string { return ms(t).Format("15:04:05.000") }
	var b strings.Builder
	b.WriteString(at0(at) + " bond0 carrier-lost pf0\n")
	for i := range n {
		t := at + i*period
		b.WriteString(at0(t) + " bond0 active-changed pf0 -> pf1\n")
		if i < n-1 || !endDown {
			b.WriteString(at0(t+period/2) + " bond0 active-changed pf1 -> pf0\n")
		}
	}
	return b.String()
}

func TestFSMDeadlines(t *testing.T) {
	t.Parallel()
	f := NewFSM(200*time.Millisecond, bond0Status("pf1", false, false))
	check := func(what string, evs []Event, next time.Time, wantEvents int, wantNext time.Time) {
		t.Helper()
		if len(evs) != wantEvents || !next.Equal(wantNext) {
			t.Errorf("%s: %d events %v, next %s; want %d events, next %s", what, len(evs), evs, next, wantEvents, wantNext)
		}
	}
	evs, next := f.Feed(slave("pf0", true, 100).msg)
	check("pf0 up", evs, next, 0, ms(300))
	evs, next = f.Feed(slave("pf1", true, 150).msg)
	check("pf1 up", evs, next, 0, ms(300))
	evs, next = f.Tick(ms(299))
	check("tick early", evs, next, 0, ms(300))
	evs, next = f.Tick(ms(300))
	check("tick at pf0's deadline", evs, next, 1, ms(350))
	evs, next = f.Feed(slave("pf1", false, 340).msg)
	check("pf1 down again", evs, next, 0, time.Time{})
}

// TestFlapsEndConsistent feeds a flapping port through the FSM into the
// planner, as the daemon does, and checks that the VMs moved as few times
// as the damping promises and that the State ends where the links are.
func TestFlapsEndConsistent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      poolOpts
		endDown   bool
		wantMoves int
		want      string // the pool at the end
	}{
		{
			name:      "active-first, failback never, ending up: one move each",
			opts:      poolOpts{policy: ActiveFirst},
			wantMoves: 3,
			want: lines(
				"bond0 active-first active pf0: pf0 up 0/4, pf1 up 3/4",
				"  pf0: -",
				"  pf1: vf0 vm1/net0, vf1 vm2/net0, vf2 vm3/net0"),
		},
		{
			name:      "active-first, failback after 30s, ending up: out and back once",
			opts:      poolOpts{policy: ActiveFirst, failback: 30 * time.Second},
			wantMoves: 6,
			want: lines(
				"bond0 active-first active pf0: pf0 up 3/4, pf1 up 0/4",
				"  pf0: vf0 vm1/net0, vf1 vm2/net0, vf2 vm3/net0",
				"  pf1: -"),
		},
		{
			name:      "balance, failback after 30s, ending up: out and back once",
			opts:      poolOpts{policy: Balance, failback: 30 * time.Second},
			wantMoves: 4,
			want: lines(
				"bond0 balance active pf0: pf0 up 2/4, pf1 up 1/4",
				"  pf0: vf0 vm1/net0, vf1 vm3/net0",
				"  pf1: vf0 vm2/net0"),
		},
		{
			name:      "active-first, failback after 30s, ending down: one move each",
			opts:      poolOpts{policy: ActiveFirst, failback: 30 * time.Second},
			endDown:   true,
			wantMoves: 3,
			want: lines(
				"bond0 active-first active pf1: pf0 down 0/4, pf1 up 3/4",
				"  pf0: -",
				"  pf1: vf0 vm1/net0, vf1 vm2/net0, vf2 vm3/net0"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := stateWith(t, tt.opts, 3)
			f := NewFSM(200*time.Millisecond, s.Bonds()...)
			var later []Event
			moves := 0
			handle := func(evs []Event) {
				for _, e := range evs {
					pl := s.Plan(e)
					s = s.Apply(pl)
					checkInvariants(t, s, &pl)
					moves += len(pl.Moves)
					later = append(later, pl.Later...)
				}
			}
			// due feeds back the Later events due by now, as the
			// daemon's timers would.
			due := func(now time.Time) {
				for len(later) > 0 && !later[0].At.After(now) {
					e := later[0]
					later = later[1:]
					handle([]Event{e})
				}
			}
			steps := append(dump(0, true, true, idxPF0), flaps(20, 1000, 250, tt.endDown)...)
			steps = append(steps, tick(10000), tick(60000))
			for _, st := range steps {
				due(st.msg.At)
				if st.tick {
					evs, _ := f.Tick(st.msg.At)
					handle(evs)
				} else {
					evs, _ := f.Feed(st.msg)
					handle(evs)
				}
			}
			due(ms(60000))
			if moves != tt.wantMoves {
				t.Errorf("%d moves, want %d", moves, tt.wantMoves)
			}
			p, _ := s.Pool("bond0")
			diff(t, "pool", p.String(), tt.want)
			// The State's bond and the FSM agree.
			st := p.Status()
			fsm := f.String()
			for _, ps := range st.Ports {
				link := " down"
				if ps.Carrier {
					link = " up"
				}
				if !strings.Contains(fsm, ps.PF+link) || !strings.Contains(fsm, "active "+st.Active+":") {
					t.Errorf("state %s disagrees with FSM %s", st, fsm)
				}
			}
		})
	}
}
