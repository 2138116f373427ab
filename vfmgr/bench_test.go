package vfmgr

import (
	"net/netip"
	"testing"
)

// bench256 is 256 VMs on the active PF of a bond of 2 x 256 VFs, every VM
// with an IPv4 and an IPv6 address.
func bench256(b *testing.B) State {
	b.Helper()
	s := newTestState(b, newTestPool(b, poolOpts{policy: ActiveFirst, vfs: [2]int{256, 256}}))
	for n := 1; n <= 256; n++ {
		r := vmReq(n)
		r.VLAN = 100 + n%8
		r.Addrs = append(r.Addrs, netip.MustParseAddr("2001:db8::1").Next())
		if _, err := s.Allocate(r); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkPlan256VMs measures the failover plan alone for the active PF
// of a full-size bond losing carrier: 256 moves and announcements.
func BenchmarkPlan256VMs(b *testing.B) {
	s := bench256(b)
	e := ev(CarrierLost, "pf0", 0)
	b.ReportAllocs()
	for b.Loop() {
		pl := s.Plan(e)
		if len(pl.Moves) != 256 {
			b.Fatalf("%d moves, want 256", len(pl.Moves))
		}
	}
}

// BenchmarkPlanApply256VMs measures the plan and recording it (Apply
// copies the whole State).
func BenchmarkPlanApply256VMs(b *testing.B) {
	s := bench256(b)
	e := ev(CarrierLost, "pf0", 0)
	b.ReportAllocs()
	for b.Loop() {
		next := s.Apply(s.Plan(e))
		if p, _ := next.Pool("bond0"); p.Status().Ports[1].Used != 256 {
			b.Fatal("moves not applied")
		}
	}
}

// BenchmarkFSMFeed measures decoding one link message.
func BenchmarkFSMFeed(b *testing.B) {
	f := NewFSM(0, bond0Status("pf0", true, true))
	msgs := [2]LinkMsg{slave("pf0", false, 0).msg, slave("pf0", true, 1).msg}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Feed(msgs[i&1])
		i++
	}
}
