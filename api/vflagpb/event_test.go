package vflagpb

import "testing"

func TestEventSummary(t *testing.T) {
	ev := &Event{Kind: "failover", Bond: "bond0", Pf: "pf0", Moved: 2, DurationMs: 43463.54, Message: "carrier-lost: 2 moved, 0 failed"}
	if got, want := ev.Summary(), "failover bond=bond0 pf=pf0 moved=2 took=43463.5ms carrier-lost: 2 moved, 0 failed"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	ev = &Event{Kind: "attach", Vm: "vm1", Mac: "52:54:00:a0:02:01"}
	if got, want := ev.Summary(), "attach vm=vm1 mac=52:54:00:a0:02:01"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}
