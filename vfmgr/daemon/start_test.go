package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/store"
)

// putAlloc writes vm<n>'s allocation of pf's VF idx to the store, as an
// earlier vflagd did (a namespace VM with netns).
func putAlloc(t testing.TB, st *store.Store, n int, pf string, idx, vlan int, netns bool) {
	t.Helper()
	a := vfmgr.Allocation{
		VM: fmt.Sprintf("vm%d", n), Iface: "net0", MAC: mustMAC(testMAC(n)), VLAN: vlan, Bond: "bond0",
		VF: vfmgr.VFRef{PF: pf, Index: idx}, Home: pf, Since: time.Now(),
	}
	if netns {
		a.Netns, a.NetnsIfname = a.VM, "eth0"
	}
	if err := st.Put(a); err != nil {
		t.Fatal(err)
	}
}

func TestStartTakesInventory(t *testing.T) {
	tests := []struct {
		name  string
		setup setup
		// wantCalls are the kernel changes Start makes.
		wantCalls string
		// wantVFs are the VFs carrying a MAC afterwards.
		wantVFs    string
		wantStatus string
		wantVMs    string
	}{{
		name:       "VFs exist",
		setup:      setup{},
		wantStatus: "bond0 active pf0: pf0 up 0/4, pf1 up 0/4\n",
	}, {
		name:       "creates VFs when sriov_numvfs is 0",
		setup:      setup{numVFs: [2]int{-1, -1}},
		wantCalls:  "numvfs pf0 4\nnumvfs pf1 4\n",
		wantStatus: "bond0 active pf0: pf0 up 0/4, pf1 up 0/4\n",
	}, {
		name:       "uses the first vfs_per_pf of more VFs",
		setup:      setup{numVFs: [2]int{6, 4}, active: "pf1", down: [2]bool{false, true}},
		wantStatus: "bond0 active pf1: pf0 up 0/4, pf1 down 0/4\n",
	}, {
		name: "clears the MACs of unallocated VFs in the pool",
		setup: setup{numVFs: [2]int{6, 4}, prepare: func(h *harness) {
			h.kernel.setVF("pf0", 1, "02:11:22:33:44:55", 0)
			h.kernel.setVF("pf1", 3, "52:54:00:00:00:07", 100)
			// Beyond vfs_per_pf: not vflag's.
			h.kernel.setVF("pf0", 5, "02:aa:bb:cc:dd:ee", 0)
		}},
		wantCalls:  "reset pf0 vf 1\nreset pf1 vf 3\n",
		wantVFs:    "pf0 vf 5 mac 02:aa:bb:cc:dd:ee vlan 0 qos 0 spoofchk on trust off\n",
		wantStatus: "bond0 active pf0: pf0 up 0/4, pf1 up 0/4\n",
	}, {
		// libvirt passed pf0 vf 0 to a guest while vflagd was down (the
		// hook's fail_open): vflagd neither resets it nor hands it out.
		name: "leaves a VF assigned to an unknown guest alone",
		setup: setup{prepare: func(h *harness) {
			h.kernel.setVF("pf0", 0, "52:54:00:99:00:01", 0)
			h.kernel.assign("pf0", 0)
			putAlloc(t, h.store, 2, "pf0", 1, 0, false)
			h.kernel.setVF("pf0", 1, testMAC(2), 0)
			h.kernel.assign("pf0", 1) // a known guest's: in the table
		}},
		wantVFs: lines(
			"pf0 vf 0 mac 52:54:00:99:00:01 vlan 0 qos 0 spoofchk on trust off",
			"pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		),
		wantStatus: "bond0 active pf0: pf0 up 1/3, pf1 up 0/4\n",
		wantVMs:    "vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off on pf0 vf 1 (0000:01:10.1)\n",
	}, {
		name: "reconfigures an allocated VF that disagrees with the table",
		setup: setup{prepare: func(h *harness) {
			putAlloc(t, h.store, 1, "pf0", 0, 100, false)
			putAlloc(t, h.store, 2, "pf0", 1, 0, false)
			putAlloc(t, h.store, 3, "pf1", 2, 200, false)
			h.kernel.setVF("pf0", 0, "02:11:22:33:44:55", 100) // another MAC
			h.kernel.setVF("pf0", 1, testMAC(2), 0)            // agrees
			h.kernel.setVF("pf1", 2, testMAC(3), 0)            // another VLAN
		}},
		wantCalls: lines(
			"configure pf0 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"configure pf1 vf 2 mac 52:54:00:00:00:03 vlan 200 qos 0 spoofchk on trust off",
		),
		wantVFs: lines(
			"pf0 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
			"pf1 vf 2 mac 52:54:00:00:00:03 vlan 200 qos 0 spoofchk on trust off",
		),
		wantStatus: "bond0 active pf0: pf0 up 2/4, pf1 up 1/4\n",
		wantVMs: lines(
			"vm1/net0 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf0 vf 0 (0000:01:10.0)",
			"vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off on pf0 vf 1 (0000:01:10.1)",
			"vm3/net0 52:54:00:00:00:03 vlan 200 qos 0 trust off on pf1 vf 2 (0000:02:10.2)",
		),
	}, {
		name: "moves VMs off a PF without carrier",
		setup: setup{active: "pf1", down: [2]bool{true, false}, prepare: func(h *harness) {
			putAlloc(t, h.store, 1, "pf0", 0, 100, false)
			h.kernel.setVF("pf0", 0, testMAC(1), 100)
		}},
		wantCalls: lines(
			"configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"reset pf0 vf 0",
		),
		wantVFs:    "pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off\n",
		wantStatus: "bond0 active pf1: pf0 down 0/4, pf1 up 1/4\n",
		wantVMs:    "vm1/net0 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf1 vf 0 (0000:02:10.0)\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, tt.setup)
			diff(t, "kernel calls", h.kernel.takeCalls(), tt.wantCalls)
			diff(t, "VFs with a MAC", h.kernel.vfsText(), tt.wantVFs)
			diff(t, "status", h.statusText(), tt.wantStatus)
			diff(t, "VMs", h.vmsText(), tt.wantVMs)
		})
	}
}

func TestStartRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup setup
		// want are the parts the error must name.
		want []string
	}{{
		name:  "fewer VFs than configured",
		setup: setup{numVFs: [2]int{4, 2}},
		want:  []string{"bond0", "pf1", "0000:02:00.0", "has 2 VFs, 4 configured", "sriov_numvfs"},
	}, {
		name:  "more VFs per PF than the PF can have",
		setup: setup{vfsPerPF: 10, numVFs: [2]int{-1, -1}},
		want:  []string{"bond0", "10 VFs per PF", "pf0", "0000:01:00.0", "igb", "sriov_totalvfs 8"},
	}, {
		name:  "PF not enslaved to the bond",
		setup: setup{prepare: func(h *harness) { h.kernel.setBond("pf1", "") }},
		want:  []string{"bond0", "pf1", "0000:02:00.0", "not enslaved"},
	}, {
		name:  "PF enslaved to another bond",
		setup: setup{prepare: func(h *harness) { h.kernel.setBond("pf0", "bond1") }},
		want:  []string{"bond0", "pf0", "0000:01:00.0", "not enslaved", "bond1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.setup)
			err := h.d.Start(context.Background())
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			diff(t, "kernel calls", h.kernel.takeCalls(), "")
		})
	}
}

// TestStartAfterCrash starts on the state a vflagd left that crashed
// during a failover: the table has the VMs on their old VFs and an intent
// to move them; the kernel shows how far the moves got.
func TestStartAfterCrash(t *testing.T) {
	// vm1 (a namespace VM) and vm2 were on pf0; the crash came during the
	// failover to pf1.
	base := func(h *harness) {
		putAlloc(t, h.store, 1, "pf0", 0, 100, true)
		putAlloc(t, h.store, 2, "pf0", 1, 0, false)
		h.kernel.setVF("pf0", 1, testMAC(2), 0)
	}
	vm1Done := func(h *harness) {
		// vm1's move went through: configure the target, hand it to the
		// VM, reset the old VF.
		h.kernel.setVF("pf1", 0, testMAC(1), 100)
		h.vms.plug("vm1/net0", vfmgr.VFRef{PF: "pf1", Index: 0})
	}
	move := func(n, to int) store.Move {
		return store.Move{
			Key: fmt.Sprintf("vm%d/net0", n), From: vfmgr.VFRef{PF: "pf0", Index: n - 1}, To: vfmgr.VFRef{PF: "pf1", Index: to},
		}
	}
	begin := func(h *harness, moves ...store.Move) {
		if err := h.store.BeginMoves("20261121T101500.000-crashed", moves); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		setup     setup
		wantCalls string
		// wantVMCalls are what the VM side is asked, wantPlugged what it
		// holds then.
		wantVMCalls, wantPlugged string
		wantVFs, wantStore       string
	}{{
		name: "the move went through: committed",
		setup: setup{prepare: func(h *harness) {
			base(h)
			vm1Done(h)
			h.kernel.setVF("pf0", 0, testMAC(1), 100) // crashed before the reset
			begin(h, move(1, 0))
		}},
		wantCalls:   "reset pf0 vf 0\n",
		wantVMCalls: "unplug vm1\nplug vm1 pf1 vf 0\n",
		wantPlugged: "vm1/net0 pf1 vf 0\n",
		wantVFs: lines(
			"pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
			"pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
		),
		wantStore: lines(
			"vm1/net0 52:54:00:00:00:01 vlan 100 on pf1 vf 0",
			"vm2/net0 52:54:00:00:00:02 vlan 0 on pf0 vf 1",
		),
	}, {
		name: "one of two moves went through: aborted, VMs stay",
		setup: setup{prepare: func(h *harness) {
			base(h)
			vm1Done(h)
			begin(h, move(1, 0), move(2, 1))
		}},
		wantCalls: lines(
			"configure pf0 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"reset pf1 vf 0",
		),
		wantVMCalls: "unplug vm1\nplug vm1 pf0 vf 0\n",
		wantPlugged: "vm1/net0 pf0 vf 0\n",
		wantVFs: lines(
			"pf0 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		),
		wantStore: lines(
			"vm1/net0 52:54:00:00:00:01 vlan 100 on pf0 vf 0",
			"vm2/net0 52:54:00:00:00:02 vlan 0 on pf0 vf 1",
		),
	}, {
		name: "no move went through, PF without carrier: aborted, then moved",
		setup: setup{active: "pf1", down: [2]bool{true, false}, prepare: func(h *harness) {
			base(h)
			h.kernel.setVF("pf0", 0, testMAC(1), 100)
			h.vms.plug("vm1/net0", vfmgr.VFRef{PF: "pf0", Index: 0})
			begin(h, move(1, 0), move(2, 1))
		}},
		wantCalls: lines(
			"configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"reset pf0 vf 0",
			"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
			"reset pf0 vf 1",
		),
		wantVMCalls: "unplug vm1\nplug vm1 pf1 vf 0\n",
		wantPlugged: "vm1/net0 pf1 vf 0\n",
		wantVFs: lines(
			"pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		),
		wantStore: lines(
			"vm1/net0 52:54:00:00:00:01 vlan 100 on pf1 vf 0",
			"vm2/net0 52:54:00:00:00:02 vlan 0 on pf1 vf 1",
		),
	}, {
		name: "one of two moves went through, PF without carrier: aborted, then moved",
		setup: setup{active: "pf1", down: [2]bool{true, false}, prepare: func(h *harness) {
			base(h)
			vm1Done(h)
			begin(h, move(1, 0), move(2, 1))
		}},
		wantCalls: lines(
			"configure pf0 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"reset pf1 vf 0",
			"configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"reset pf0 vf 0",
			"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
			"reset pf0 vf 1",
		),
		wantVMCalls: "unplug vm1\nplug vm1 pf0 vf 0\nunplug vm1\nplug vm1 pf1 vf 0\n",
		wantPlugged: "vm1/net0 pf1 vf 0\n",
		wantVFs: lines(
			"pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
			"pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		),
		wantStore: lines(
			"vm1/net0 52:54:00:00:00:01 vlan 100 on pf1 vf 0",
			"vm2/net0 52:54:00:00:00:02 vlan 0 on pf1 vf 1",
		),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, tt.setup)
			diff(t, "kernel calls", h.kernel.takeCalls(), tt.wantCalls)
			diff(t, "VM side calls", h.vms.takeCalls(), tt.wantVMCalls)
			diff(t, "plugged", h.vms.pluggedText(), tt.wantPlugged)
			diff(t, "VFs with a MAC", h.kernel.vfsText(), tt.wantVFs)
			diff(t, "store", h.storeText(false), tt.wantStore)
			diff(t, "daemon's table", h.tableText(), tt.wantStore)
		})
	}
}

// TestStartAnnouncesEveryVM: a restarted vflagd cannot know whether its
// previous run told the switches where its last failover put the VMs (it
// may have died between committing and announcing), so Start announces
// every VM whose PF has carrier, from that PF; a VM stranded on a PF
// without carrier is not announced there.
func TestStartAnnouncesEveryVM(t *testing.T) {
	h := started(t, setup{rarp: true, down: [2]bool{false, true}, prepare: func(h *harness) {
		putAlloc(t, h.store, 1, "pf0", 0, 100, true)
		h.kernel.setVF("pf0", 0, testMAC(1), 100)
		putAlloc(t, h.store, 2, "pf0", 1, 0, false)
		h.kernel.setVF("pf0", 1, testMAC(2), 0)
	}})
	h.d.Close() // waits for the announcements
	got := h.ann.take()
	for _, want := range []string{"announce pf0 " + testMAC(1) + " vlan 100", "announce pf0 " + testMAC(2) + " vlan 0"} {
		if !strings.Contains(got, want) {
			t.Errorf("announced:\n%s\nwant a line with %q", got, want)
		}
	}
	if strings.Contains(got, "pf1") {
		t.Errorf("announced from pf1, which has no carrier:\n%s", got)
	}
}
