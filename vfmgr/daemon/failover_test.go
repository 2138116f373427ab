package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/vfmgr"
)

// attachThree attaches a namespace VM with VLAN 100 (vm1), a libvirt VM
// untagged (vm2) and a libvirt VM with VLAN 200, priority 3 and trust on
// (vm3): all on pf0, the active PF.
func attachThree(h *harness) {
	h.t.Helper()
	h.attach(1, 100, true)
	h.attach(2, 0, false)
	if _, err := h.d.Attach(context.Background(), &vflagpb.AttachRequest{
		Vm: "vm3", Iface: "net0", Mac: testMAC(3), Vlan: 200, Qos: 3, Trust: true,
	}); err != nil {
		h.t.Fatal(err)
	}
	h.drain()
}

// metricNames are the metrics the failover tests look at.
var metricNames = []string{"vflag_failover", "vflag_vm_", "vflag_frames", "vflag_vfs_used", "vflag_port_carrier"}

func TestCarrierLoss(t *testing.T) {
	onPF0 := lines(
		"vm1/net0 52:54:00:00:00:01 vlan 100 on pf0 vf 0",
		"vm2/net0 52:54:00:00:00:02 vlan 0 on pf0 vf 1",
		"vm3/net0 52:54:00:00:00:03 vlan 200 on pf0 vf 2",
	)
	onPF1 := lines(
		"vm1/net0 52:54:00:00:00:01 vlan 100 on pf1 vf 0",
		"vm2/net0 52:54:00:00:00:02 vlan 0 on pf1 vf 1",
		"vm3/net0 52:54:00:00:00:03 vlan 200 on pf1 vf 2",
	)
	vfsOnPF0 := lines(
		"pf0 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
		"pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		"pf0 vf 2 mac 52:54:00:00:00:03 vlan 200 qos 3 spoofchk on trust on",
	)
	vfsOnPF1 := lines(
		"pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
		"pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		"pf1 vf 2 mac 52:54:00:00:00:03 vlan 200 qos 3 spoofchk on trust on",
	)
	movesToPF1 := lines(
		"configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
		"reset pf0 vf 0",
		"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		"reset pf0 vf 1",
		"configure pf1 vf 2 mac 52:54:00:00:00:03 vlan 200 qos 3 spoofchk on trust on",
		"reset pf0 vf 2",
	)
	announcedOnPF1 := lines(
		"announce pf1 52:54:00:00:00:01 vlan 100 addrs 198.18.0.1",
		"announce pf1 52:54:00:00:00:02 vlan 0 addrs none",
		"announce pf1 52:54:00:00:00:03 vlan 200 addrs none",
	)
	stranded := lines(
		"unplaceable bond0 pf0 52:54:00:00:00:01: pf0 and pf1 have no carrier",
		"unplaceable bond0 pf0 52:54:00:00:00:02: pf0 and pf1 have no carrier",
		"unplaceable bond0 pf0 52:54:00:00:00:03: pf0 and pf1 have no carrier",
	)
	tests := []struct {
		name string
		// links changes the links, as the kernel reports it.
		links func(h *harness)
		// want* are what happened: kernel and VM side calls,
		// announcements and events; and how things are then.
		wantCalls, wantVMCalls, wantAnnounced, wantEvents string
		wantStatus, wantVMs, wantVFs, wantMetrics         string
	}{{
		name:          "active PF loses carrier",
		links:         func(h *harness) { h.cut("pf0", 10*time.Millisecond) },
		wantCalls:     movesToPF1,
		wantVMCalls:   "unplug vm1\nplug vm1 pf1 vf 0\n",
		wantAnnounced: announcedOnPF1,
		wantEvents: lines(
			"failover bond0 pf0 moved 3: carrier-lost: 3 moved, 0 failed",
			"active-changed bond0 pf1",
		),
		wantStatus: "bond0 active pf1: pf0 down 0/4, pf1 up 3/4\n",
		wantVMs:    onPF1,
		wantVFs:    vfsOnPF1,
		wantMetrics: lines(
			"vflag_failover_duration_seconds_count bond=bond0 1",
			"vflag_failovers_total bond=bond0 1",
			"vflag_frames_announced_total pf=pf1 3",
			"vflag_port_carrier bond=bond0,pf=pf0 0",
			"vflag_port_carrier bond=bond0,pf=pf1 1",
			"vflag_vfs_used bond=bond0,pf=pf0 0",
			"vflag_vfs_used bond=bond0,pf=pf1 3",
			"vflag_vm_moves_total bond=bond0 3",
		),
	}, {
		name:       "backup PF loses carrier",
		links:      func(h *harness) { h.cut("pf1", 10*time.Millisecond) },
		wantEvents: "carrier-lost bond0 pf1\n",
		wantStatus: "bond0 active pf0: pf0 up 3/4, pf1 down 0/4\n",
		wantVMs:    onPF0,
		wantVFs:    vfsOnPF0,
		wantMetrics: lines(
			"vflag_port_carrier bond=bond0,pf=pf0 1",
			"vflag_port_carrier bond=bond0,pf=pf1 0",
			"vflag_vfs_used bond=bond0,pf=pf0 3",
			"vflag_vfs_used bond=bond0,pf=pf1 0",
		),
	}, {
		name: "both PFs lose carrier",
		links: func(h *harness) {
			h.cut("pf1", 10*time.Millisecond)
			h.cut("pf0", 10*time.Millisecond)
		},
		// Every event tells again who is stranded.
		wantEvents: "carrier-lost bond0 pf1\n" + stranded + "carrier-lost bond0 pf0\n" + stranded + "active-changed bond0\n",
		wantStatus: "bond0 active (none): pf0 down 3/4, pf1 down 0/4\n",
		wantVMs:    onPF0,
		wantVFs:    vfsOnPF0,
		wantMetrics: lines(
			"vflag_port_carrier bond=bond0,pf=pf0 0",
			"vflag_port_carrier bond=bond0,pf=pf1 0",
			"vflag_vfs_used bond=bond0,pf=pf0 3",
			"vflag_vfs_used bond=bond0,pf=pf1 0",
			"vflag_vm_unplaceable_total bond=bond0 6",
		),
	}, {
		name: "both PFs lose carrier, the backup comes back",
		links: func(h *harness) {
			h.cut("pf1", 10*time.Millisecond)
			h.cut("pf0", 10*time.Millisecond)
			h.restore("pf1", time.Second)
		},
		wantCalls:     movesToPF1,
		wantVMCalls:   "unplug vm1\nplug vm1 pf1 vf 0\n",
		wantAnnounced: announcedOnPF1,
		wantEvents: "carrier-lost bond0 pf1\n" + stranded + "carrier-lost bond0 pf0\n" + stranded + "active-changed bond0\n" + lines(
			"failover bond0 pf1 moved 3: carrier-regained: 3 moved, 0 failed",
			"active-changed bond0 pf1",
		),
		wantStatus: "bond0 active pf1: pf0 down 0/4, pf1 up 3/4\n",
		wantVMs:    onPF1,
		wantVFs:    vfsOnPF1,
		wantMetrics: lines(
			"vflag_failover_duration_seconds_count bond=bond0 1",
			"vflag_failovers_total bond=bond0 1",
			"vflag_frames_announced_total pf=pf1 3",
			"vflag_port_carrier bond=bond0,pf=pf0 0",
			"vflag_port_carrier bond=bond0,pf=pf1 1",
			"vflag_vfs_used bond=bond0,pf=pf0 0",
			"vflag_vfs_used bond=bond0,pf=pf1 3",
			"vflag_vm_moves_total bond=bond0 3",
			"vflag_vm_unplaceable_total bond=bond0 6",
		),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := running(t, setup{rarp: true})
			attachThree(h)
			tt.links(h)
			h.sync()
			diff(t, "kernel calls", h.kernel.takeCalls(), tt.wantCalls)
			diff(t, "VM side calls", h.vms.takeCalls(), tt.wantVMCalls)
			diff(t, "announced", h.ann.take(), tt.wantAnnounced)
			diff(t, "events", h.takeEvents(), tt.wantEvents)
			diff(t, "status", h.statusText(), tt.wantStatus)
			diff(t, "VMs", h.tableText(), tt.wantVMs)
			diff(t, "VFs with a MAC", h.kernel.vfsText(), tt.wantVFs)
			diff(t, "metrics", h.metricsText(metricNames...), tt.wantMetrics)
			// The store has the VMs where the daemon has them, and no
			// failover half done.
			diff(t, "store", h.storeText(false), tt.wantVMs)
		})
	}
}

// TestAnnounceWithoutAddrs checks that a MAC without known addresses is
// not announced unless RARP is configured for it.
func TestAnnounceWithoutAddrs(t *testing.T) {
	for _, rarp := range []bool{false, true} {
		t.Run(fmt.Sprintf("rarp %t", rarp), func(t *testing.T) {
			h := running(t, setup{rarp: rarp})
			h.attach(1, 0, true)
			h.attach(2, 0, false)
			h.drain()
			h.cut("pf0", 0)
			h.sync()
			want := "announce pf1 52:54:00:00:00:01 vlan 0 addrs 198.18.0.1\n"
			if rarp {
				want += "announce pf1 52:54:00:00:00:02 vlan 0 addrs none\n"
			}
			diff(t, "announced", h.ann.take(), want)
		})
	}
}

// TestPartialFailover makes one of two moves fail: the other VM moves, the
// failed one stays where it was, a Reconcile tries it once more, and the
// next event tries again.
func TestPartialFailover(t *testing.T) {
	tests := []struct {
		name string
		fail func(h *harness)
		// wantCalls and wantVMCalls are those of the carrier loss.
		wantCalls, wantVMCalls string
	}{{
		name: "configuring the target VF fails",
		fail: func(h *harness) { h.kernel.failOn("configure pf1 vf 1") },
		wantCalls: lines(
			"configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off",
			"reset pf0 vf 0",
			"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off (failed)",
			"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off (failed)",
		),
		wantVMCalls: "unplug vm1\nplug vm1 pf1 vf 0\n",
	}, {
		name: "plugging the target VF fails",
		fail: func(h *harness) { h.vms.failOn("plug vm2 pf1") },
		wantCalls: lines(
			"configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off",
			"reset pf0 vf 0",
			"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
			"reset pf1 vf 1",
			"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
			"reset pf1 vf 1",
		),
		wantVMCalls: lines(
			"unplug vm1", "plug vm1 pf1 vf 0",
			"unplug vm2", "plug vm2 pf1 vf 1 (failed)", "plug vm2 pf0 vf 1",
			"unplug vm2", "plug vm2 pf1 vf 1 (failed)", "plug vm2 pf0 vf 1",
		),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := running(t, setup{})
			h.attach(1, 0, true)
			h.attach(2, 0, true)
			h.drain()
			tt.fail(h)

			// pf0 loses carrier; the bond's own message is yet to come.
			h.kernel.setCarrier("pf0", false)
			h.send(h.pfMsg("pf0"))
			h.sync()
			diff(t, "kernel calls", h.kernel.takeCalls(), tt.wantCalls)
			diff(t, "VM side calls", h.vms.takeCalls(), tt.wantVMCalls)
			diff(t, "events", h.takeEvents(), lines(
				"failover bond0 pf0 moved 1: carrier-lost: 1 moved, 1 failed",
				"failover bond0 moved 0: reconcile: 0 moved, 1 failed",
			))
			split := lines(
				"vm1/net0 52:54:00:00:00:01 vlan 0 on pf1 vf 0",
				"vm2/net0 52:54:00:00:00:02 vlan 0 on pf0 vf 1",
			)
			diff(t, "VMs", h.tableText(), split)
			diff(t, "store", h.storeText(false), split)
			diff(t, "plugged", h.vms.pluggedText(), "vm1/net0 pf1 vf 0\nvm2/net0 pf0 vf 1\n")
			diff(t, "VFs with a MAC", h.kernel.vfsText(), lines(
				"pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
				"pf1 vf 0 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off",
			))
			diff(t, "announced", h.ann.take(), "announce pf1 52:54:00:00:00:01 vlan 0 addrs 198.18.0.1\n")

			// The failure is gone; the bond's message is the next event.
			h.kernel.heal()
			h.vms.heal()
			h.bonds.set("bond0", "pf1")
			h.send(h.bondMsg())
			h.sync()
			diff(t, "events after the next event", h.takeEvents(),
				"failover bond0 pf1 moved 1: active-changed: 1 moved, 0 failed\n")
			moved := lines(
				"vm1/net0 52:54:00:00:00:01 vlan 0 on pf1 vf 0",
				"vm2/net0 52:54:00:00:00:02 vlan 0 on pf1 vf 1",
			)
			diff(t, "VMs after the next event", h.tableText(), moved)
			diff(t, "store after the next event", h.storeText(false), moved)
			diff(t, "plugged after the next event", h.vms.pluggedText(), "vm1/net0 pf1 vf 0\nvm2/net0 pf1 vf 1\n")
			diff(t, "announced after the next event", h.ann.take(), "announce pf1 52:54:00:00:00:02 vlan 0 addrs 198.18.0.2\n")
		})
	}
}

// TestFailedMovesRetriedLater: a move that fails on the event and on the
// Reconcile right after is tried again later without any new event, after
// a wait that doubles while it keeps failing; once it goes through, the
// VM is on the surviving PF.
func TestFailedMovesRetriedLater(t *testing.T) {
	h := running(t, setup{retryAfter: 100 * time.Millisecond})
	h.attach(1, 0, true)
	h.attach(2, 0, true)
	h.drain()
	h.vms.failOn("plug vm2 pf1")

	// pf0 loses carrier; the bond's own message does not come.
	began := time.Now()
	h.kernel.setCarrier("pf0", false)
	h.send(h.pfMsg("pf0"))
	h.sync()
	diff(t, "events", h.takeEvents(), lines(
		"failover bond0 pf0 moved 1: carrier-lost: 1 moved, 1 failed",
		"failover bond0 moved 0: reconcile: 0 moved, 1 failed",
	))
	// Still failing: the first retry, 100 ms on, fails too.
	if got := h.nextEvent(t, 5*time.Second); got != "failover bond0 moved 0: reconcile: 0 moved, 1 failed" {
		t.Fatalf("first retry: %q", got)
	}
	first := time.Since(began)
	h.vms.heal()
	// The second comes 200 ms after the first and moves vm2.
	if got := h.nextEvent(t, 5*time.Second); got != "failover bond0 moved 1: reconcile: 1 moved, 0 failed" {
		t.Fatalf("second retry: %q", got)
	}
	if second := time.Since(began); second-first < 150*time.Millisecond {
		t.Errorf("second retry %v after the first, want about 200ms (the wait doubles)", second-first)
	}
	h.sync()
	moved := lines(
		"vm1/net0 52:54:00:00:00:01 vlan 0 on pf1 vf 0",
		"vm2/net0 52:54:00:00:00:02 vlan 0 on pf1 vf 1",
	)
	diff(t, "VMs", h.tableText(), moved)
	diff(t, "store", h.storeText(false), moved)
	diff(t, "plugged", h.vms.pluggedText(), "vm1/net0 pf1 vf 0\nvm2/net0 pf1 vf 1\n")
	// Nothing left to retry: no more events.
	if ev := h.nextEvent(t, 500*time.Millisecond); ev != "" {
		t.Errorf("after the move went through: %q", ev)
	}
}

// TestFailoverIntentNotWritten checks that when the store cannot take a
// failover's intent (full disk), nothing moves at first, the daemon still
// knows the PF is down, and the Reconcile that follows moves the VMs.
func TestFailoverIntentNotWritten(t *testing.T) {
	h := running(t, setup{flaky: true})
	h.attach(1, 0, false)
	h.attach(2, 0, false)
	h.drain()
	h.flaky.failBegin = 1
	h.kernel.setCarrier("pf0", false)
	h.send(h.pfMsg("pf0"))
	h.sync()
	diff(t, "events", h.takeEvents(), lines(
		"failover bond0 pf0 moved 0: carrier-lost: 0 moved, 2 failed",
		"failover bond0 moved 2: reconcile: 2 moved, 0 failed",
	))
	diff(t, "status", h.statusText(), "bond0 active pf0: pf0 down 0/4, pf1 up 2/4\n")
	moved := lines(
		"vm1/net0 52:54:00:00:00:01 vlan 0 on pf1 vf 0",
		"vm2/net0 52:54:00:00:00:02 vlan 0 on pf1 vf 1",
	)
	diff(t, "VMs", h.tableText(), moved)
	diff(t, "store", h.storeText(false), moved)
}

// TestFailoverRequest makes the bond switch ports through the API: the
// VMs follow the bond.
func TestFailoverRequest(t *testing.T) {
	h := running(t, setup{})
	h.attach(1, 0, false)
	h.attach(2, 0, true)
	h.drain()
	// The kernel reports the bond's change.
	h.bonds.onChange = func(string) { h.send(h.bondMsg()) }

	for _, c := range []struct{ bond, to string }{{"bond9", "pf1"}, {"", "pf7"}, {"bond0", "bond0"}} {
		if r, err := h.d.Failover(context.Background(), c.bond, c.to); !errors.Is(err, vfmgr.ErrNotManaged) {
			t.Errorf("Failover(%q, %q) = %v, %v; want ErrNotManaged", c.bond, c.to, r, err)
		}
	}
	r, err := h.d.Failover(context.Background(), "", "pf1")
	if err != nil {
		t.Fatalf("Failover: %v", err)
	}
	h.sync()
	got := fmt.Sprintf("%s: %s -> %s, %d moved\n", r.GetBond(), r.GetFrom(), r.GetTo(), r.GetMoved())
	diff(t, "response", got, "bond0: pf0 -> pf1, 2 moved\n")
	diff(t, "bond calls", h.bonds.takeCalls(), "set-active bond0 pf1\n")
	diff(t, "kernel calls", h.kernel.takeCalls(), lines(
		"configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off",
		"reset pf0 vf 0",
		"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		"reset pf0 vf 1",
	))
	diff(t, "VM side calls", h.vms.takeCalls(), "unplug vm2\nplug vm2 pf1 vf 1\n")
	diff(t, "events", h.takeEvents(), "failover bond0 pf1 moved 2: active-changed: 2 moved, 0 failed\n")
	diff(t, "status", h.statusText(), "bond0 active pf1: pf0 up 0/4, pf1 up 2/4\n")
	diff(t, "announced", h.ann.take(), "announce pf1 52:54:00:00:00:02 vlan 0 addrs 198.18.0.2\n")
}

// TestFlapping flaps the bond's active port 20 times in about 5 s of
// simulated time, then takes it down for good: the daemon must end
// consistent, with every VM on the port that has carrier.
func TestFlapping(t *testing.T) {
	tests := []struct {
		name     string
		holdDown time.Duration
		// up and down are, in turn, how long the active port keeps and
		// loses carrier.
		up, down []time.Duration
	}{{
		name:     "hold-down 200ms",
		holdDown: 200 * time.Millisecond,
		up:       ms(120, 70, 250, 80),
		down:     ms(60, 210, 40, 170),
	}, {
		name:     "hold-down 200ms, regains never held",
		holdDown: 200 * time.Millisecond,
		up:       ms(125),
		down:     ms(125),
	}, {
		name: "no hold-down",
		up:   ms(120, 70, 250, 80),
		down: ms(60, 210, 40, 170),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := running(t, setup{holdDown: tt.holdDown, vfsPerPF: 8, rarp: true})
			for n := 1; n <= 6; n++ {
				h.attach(n, uint32(100*(n%3)), n <= 3)
			}
			h.drain()
			start := h.at
			for i := range 20 {
				pf := h.bonds.get("bond0")
				h.cut(pf, tt.up[i%len(tt.up)])
				h.restore(pf, tt.down[i%len(tt.down)])
			}
			if took := h.at.Sub(start); took > 5*time.Second {
				t.Fatalf("20 flaps took %s of simulated time", took)
			}
			last := h.bonds.get("bond0")
			h.cut(last, 100*time.Millisecond)
			h.wait(time.Second)

			up := other(last)
			diff(t, "status", h.statusText(), fmt.Sprintf("bond0 active %s: %s\n", up,
				map[string]string{"pf0": "pf0 up 6/8, pf1 down 0/8", "pf1": "pf0 down 0/8, pf1 up 6/8"}[up]))
			checkConsistent(t, h, 6)
			if moves := h.metricsText("vflag_vm_moves_total"); moves == "" || moves == "vflag_vm_moves_total bond=bond0 0\n" {
				t.Errorf("no VM moved during the flaps: %q", moves)
			}
		})
	}
}

// checkConsistent checks what must hold whatever happened: n VMs, each
// on its own VF of a PF with carrier, no MAC twice; the kernel's VFs carry
// exactly the VMs' settings; the store agrees with no failover half done;
// each namespace VM holds its VF.
func checkConsistent(t *testing.T, h *harness, n int) {
	t.Helper()
	l, err := h.d.ListVMs(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != n {
		t.Errorf("%d VMs listed, want %d:\n%s", len(l), n, h.vmsText())
	}
	r, err := h.d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]uint32{}
	for _, p := range r.GetBonds()[0].GetPorts() {
		used[p.GetName()] = p.GetVfsUsed()
	}
	held := map[string]string{}
	macs := map[string]string{}
	// The kernel lists VFs by PF and index.
	slices.SortFunc(l, func(a, b *vflagpb.VMInterface) int {
		if c := strings.Compare(a.GetPf(), b.GetPf()); c != 0 {
			return c
		}
		return int(a.GetVf()) - int(b.GetVf())
	})
	var wantVFs, wantPlugged []string
	for _, v := range l {
		key := v.GetVm() + "/" + v.GetIface()
		vf := fmt.Sprintf("%s vf %d", v.GetPf(), v.GetVf())
		if other, dup := held[vf]; dup {
			t.Errorf("%s held by %s and %s", vf, other, key)
		}
		held[vf] = key
		if other, dup := macs[v.GetMac()]; dup {
			t.Errorf("MAC %s held by %s and %s", v.GetMac(), other, key)
		}
		macs[v.GetMac()] = key
		if pf, _ := h.kernel.PF(context.Background(), v.GetPf()); !pf.Carrier {
			t.Errorf("%s is on %s, which has no carrier", key, vf)
		}
		used[v.GetPf()]--
		wantVFs = append(wantVFs, fmt.Sprintf("%s mac %s vlan %d qos %d spoofchk on trust %s",
			vf, v.GetMac(), v.GetVlan(), v.GetQos(), onOff(v.GetTrust())))
		if v.GetNetns() != "" {
			wantPlugged = append(wantPlugged, key+" "+vf)
		}
	}
	slices.Sort(wantPlugged)
	for pf, u := range used {
		if u != 0 {
			t.Errorf("status counts %d VFs of %s used that no VM holds", u, pf)
		}
	}
	diff(t, "VFs with a MAC", h.kernel.vfsText(), lines(wantVFs...))
	diff(t, "store", h.storeText(false), h.tableText())
	diff(t, "plugged", h.vms.pluggedText(), lines(wantPlugged...))
}

// ms turns milliseconds into durations.
func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

// TestParallelMoves: with moves run side by side (the default), a failover
// ends exactly as with one move at a time — same VMs on the same VFs, same
// kernel and VM-side calls (in another order), same announcements.
func TestParallelMoves(t *testing.T) {
	outcome := func(parallel int) [5]string {
		h := running(t, setup{rarp: true, parallel: parallel})
		attachThree(h)
		h.cut("pf0", 10*time.Millisecond)
		h.sync()
		return [5]string{sortedLines(h.kernel.takeCalls()), sortedLines(h.vms.takeCalls()), sortedLines(h.ann.take()), h.tableText(), h.kernel.vfsText()}
	}
	one, many := outcome(1), outcome(8)
	for i, what := range []string{"kernel calls", "VM side calls", "announced", "VMs", "VFs"} {
		diff(t, what+" (8 at once vs one at a time)", many[i], one[i])
	}
	if !strings.Contains(one[3], "pf1") {
		t.Fatalf("the failover moved nothing:\n%s", one[3])
	}
}

func sortedLines(s string) string {
	l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n") + "\n"
}
