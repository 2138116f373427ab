package daemon_test

import (
	"context"
	"errors"
	"testing"

	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/vfmgr"
)

func TestAttach(t *testing.T) {
	tests := []struct {
		name  string
		setup setup
		// before attaches these VMs first (vm<n>, untagged, libvirt).
		before      []int
		req         *vflagpb.AttachRequest
		want        string // the interface returned
		wantCalls   string
		wantVMCalls string
		wantStatus  string
	}{{
		name:       "a VF of the active PF",
		req:        &vflagpb.AttachRequest{Vm: "vm1", Iface: "net0", Mac: "52:54:00:00:00:01", Vlan: 100},
		want:       "vm1/net0 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf0 vf 0 (0000:01:10.0)",
		wantCalls:  "configure pf0 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off\n",
		wantStatus: "bond0 active pf0: pf0 up 1/4, pf1 up 0/4\n",
	}, {
		name:       "the other PF when it is the active one",
		setup:      setup{active: "pf1"},
		req:        &vflagpb.AttachRequest{Vm: "vm1", Iface: "net0", Mac: "52:54:00:00:00:01", Vlan: 100, Qos: 5, Trust: true},
		want:       "vm1/net0 52:54:00:00:00:01 vlan 100 qos 5 trust on on pf1 vf 0 (0000:02:10.0)",
		wantCalls:  "configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 5 spoofchk on trust on\n",
		wantStatus: "bond0 active pf1: pf0 up 0/4, pf1 up 1/4\n",
	}, {
		name:       "the next free VF",
		before:     []int{1, 2},
		req:        attachReq(3, 0, false),
		want:       "vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 trust off on pf0 vf 2 (0000:01:10.2)",
		wantCalls:  "configure pf0 vf 2 mac 52:54:00:00:00:03 vlan 0 qos 0 spoofchk on trust off\n",
		wantStatus: "bond0 active pf0: pf0 up 3/4, pf1 up 0/4\n",
	}, {
		name:       "the backup PF when the active one is full",
		setup:      setup{vfsPerPF: 2},
		before:     []int{1, 2},
		req:        attachReq(3, 0, false),
		want:       "vm3/net0 52:54:00:00:00:03 vlan 0 qos 0 trust off on pf1 vf 0 (0000:02:10.0)",
		wantCalls:  "configure pf1 vf 0 mac 52:54:00:00:00:03 vlan 0 qos 0 spoofchk on trust off\n",
		wantStatus: "bond0 active pf0: pf0 up 2/2, pf1 up 1/2\n",
	}, {
		name:       "not a PF without carrier",
		setup:      setup{down: [2]bool{true, false}},
		req:        attachReq(1, 0, false),
		want:       "vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off on pf1 vf 0 (0000:02:10.0)",
		wantCalls:  "configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off\n",
		wantStatus: "bond0 active pf0: pf0 down 0/4, pf1 up 1/4\n",
	}, {
		name:        "a namespace VM gets the VF plugged",
		req:         attachReq(1, 10, true),
		want:        "vm1/net0 52:54:00:00:00:01 vlan 10 qos 0 trust off on pf0 vf 0 (0000:01:10.0) netns vm1",
		wantCalls:   "configure pf0 vf 0 mac 52:54:00:00:00:01 vlan 10 qos 0 spoofchk on trust off\n",
		wantVMCalls: "plug vm1 pf0 vf 0\n",
		wantStatus:  "bond0 active pf0: pf0 up 1/4, pf1 up 0/4\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, tt.setup)
			for _, n := range tt.before {
				h.attach(n, 0, false)
			}
			h.drain()
			got, err := h.d.Attach(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			diff(t, "interface", vmText(got)+"\n", tt.want+"\n")
			diff(t, "kernel calls", h.kernel.takeCalls(), tt.wantCalls)
			diff(t, "VM side calls", h.vms.takeCalls(), tt.wantVMCalls)
			diff(t, "status", h.statusText(), tt.wantStatus)
			diff(t, "events", h.takeEvents(), "attach bond0 "+got.GetPf()+" "+got.GetVm()+" "+got.GetMac()+"\n")
			l, err := h.d.ListVMs(context.Background(), tt.req.GetVm())
			if err != nil || len(l) != 1 {
				t.Fatalf("ListVMs(%s) = %v, %v", tt.req.GetVm(), l, err)
			}
			diff(t, "listed", vmText(l[0])+"\n", tt.want+"\n")
			// What the store has survives a restart.
			diff(t, "store after reopening", h.storeText(true), h.tableText())
		})
	}
}

func TestAttachRefuses(t *testing.T) {
	tests := []struct {
		name   string
		setup  setup
		before []int
		req    *vflagpb.AttachRequest
		want   error
	}{{
		name:   "a MAC another VM holds",
		before: []int{1},
		req:    &vflagpb.AttachRequest{Vm: "vm2", Iface: "net0", Mac: "52:54:00:00:00:01"},
		want:   vfmgr.ErrDuplicateMAC,
	}, {
		name:   "a MAC another interface of the VM holds",
		before: []int{1},
		req:    &vflagpb.AttachRequest{Vm: "vm1", Iface: "net1", Mac: "52:54:00:00:00:01"},
		want:   vfmgr.ErrDuplicateMAC,
	}, {
		name:   "other settings for an interface that holds a VF",
		before: []int{1},
		req:    &vflagpb.AttachRequest{Vm: "vm1", Iface: "net0", Mac: "52:54:00:00:00:01", Vlan: 7},
		want:   vfmgr.ErrAllocated,
	}, {
		name:   "another namespace for an interface that holds a VF",
		before: []int{1},
		req:    attachReq(1, 0, true),
		want:   vfmgr.ErrAllocated,
	}, {
		name:   "every VF held",
		setup:  setup{vfsPerPF: 2},
		before: []int{1, 2, 3, 4},
		req:    attachReq(5, 0, false),
		want:   vfmgr.ErrNoFreeVF,
	}, {
		name:  "no PF with carrier",
		setup: setup{down: [2]bool{true, true}, active: "-"},
		req:   attachReq(1, 0, false),
		want:  vfmgr.ErrNoFreeVF,
	}, {
		name: "an unknown bond",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "52:54:00:00:00:01", Bond: "bond7"},
		want: vfmgr.ErrNotManaged,
	}, {
		name: "no MAC",
		req:  &vflagpb.AttachRequest{Vm: "vm1"},
		want: api.ErrInvalid,
	}, {
		name: "a MAC that does not parse",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "52:54:00:00:01"},
		want: api.ErrInvalid,
	}, {
		name: "a 20-byte MAC",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"},
		want: api.ErrInvalid,
	}, {
		name: "a multicast MAC",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "01:00:5e:00:00:01"},
		want: api.ErrInvalid,
	}, {
		name: "the zero MAC",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "00:00:00:00:00:00"},
		want: api.ErrInvalid,
	}, {
		name: "VLAN 4095",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "52:54:00:00:00:01", Vlan: 4095},
		want: api.ErrInvalid,
	}, {
		name: "QoS 8",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "52:54:00:00:00:01", Vlan: 100, Qos: 8},
		want: api.ErrInvalid,
	}, {
		name: "no VM",
		req:  &vflagpb.AttachRequest{Mac: "52:54:00:00:00:01"},
		want: api.ErrInvalid,
	}, {
		name: "a VM name with a slash",
		req:  &vflagpb.AttachRequest{Vm: "a/b", Mac: "52:54:00:00:00:01"},
		want: api.ErrInvalid,
	}, {
		name: "a netns path",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "52:54:00:00:00:01", Netns: "/run/netns/vm1", NetnsIfname: "eth0"},
		want: api.ErrInvalid,
	}, {
		name: "a netns without interface name",
		req:  &vflagpb.AttachRequest{Vm: "vm1", Mac: "52:54:00:00:00:01", Netns: "vm1"},
		want: api.ErrInvalid,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, tt.setup)
			for _, n := range tt.before {
				h.attach(n, 0, false)
			}
			h.drain()
			before := h.vmsText()
			got, err := h.d.Attach(context.Background(), tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Attach = %v, %v; want an error wrapping %q", got, err, tt.want)
			}
			diff(t, "kernel calls", h.kernel.takeCalls(), "")
			diff(t, "VM side calls", h.vms.takeCalls(), "")
			diff(t, "VMs", h.vmsText(), before)
			diff(t, "store", h.storeText(false), h.tableText())
			diff(t, "events", h.takeEvents(), "")
		})
	}
}

// TestAttachFailureLeaksNothing checks that a failed attach undoes every
// step: no allocation in the table or the store, the VF reset if it was
// configured, nothing left plugged, and the VF handed out next.
func TestAttachFailureLeaksNothing(t *testing.T) {
	tests := []struct {
		name        string
		fail        func(h *harness)
		wantCalls   string
		wantVMCalls string
	}{{
		name:      "configuring the VF fails",
		fail:      func(h *harness) { h.kernel.failOn("configure pf0 vf 1") },
		wantCalls: "configure pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off (failed)\n",
	}, {
		name: "plugging the VF fails",
		fail: func(h *harness) { h.vms.failOn("plug vm2") },
		wantCalls: lines(
			"configure pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
			"reset pf0 vf 1",
		),
		wantVMCalls: "plug vm2 pf0 vf 1 (failed)\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, setup{})
			h.attach(1, 0, true)
			h.drain()
			before := h.vmsText()
			tt.fail(h)
			if got, err := h.d.Attach(context.Background(), attachReq(2, 0, true)); !errors.Is(err, errInjected) {
				t.Fatalf("Attach = %v, %v; want the injected failure", got, err)
			}
			diff(t, "kernel calls", h.kernel.takeCalls(), tt.wantCalls)
			diff(t, "VM side calls", h.vms.takeCalls(), tt.wantVMCalls)
			diff(t, "VMs", h.vmsText(), before)
			diff(t, "plugged", h.vms.pluggedText(), "vm1/net0 pf0 vf 0\n")
			diff(t, "VFs with a MAC", h.kernel.vfsText(), "pf0 vf 0 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off\n")
			diff(t, "store", h.storeText(false), "vm1/net0 52:54:00:00:00:01 vlan 0 on pf0 vf 0\n")
			if _, err := h.d.ListVMs(context.Background(), "vm2"); !errors.Is(err, vfmgr.ErrNotManaged) {
				t.Errorf("ListVMs(vm2) after the failed attach: %v, want ErrNotManaged", err)
			}

			// Once the failure is gone, the same VF is handed out.
			h.kernel.heal()
			h.vms.heal()
			got := h.attach(2, 0, true)
			diff(t, "retried attach", vmText(got)+"\n",
				"vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off on pf0 vf 1 (0000:01:10.1) netns vm2\n")
		})
	}
}

// TestAttachRepeated checks that attaching an interface that holds a VF
// again (the hook runs again) answers with that VF and changes nothing,
// even when the kernel or the VM side would fail now: the VM keeps its VF
// and the VF is never handed out twice.
func TestAttachRepeated(t *testing.T) {
	tests := []struct {
		name  string
		netns bool
		fail  func(h *harness)
	}{
		{name: "libvirt VM", fail: func(*harness) {}},
		{name: "libvirt VM, kernel failing", fail: func(h *harness) { h.kernel.failOn("configure") }},
		{name: "namespace VM", netns: true, fail: func(*harness) {}},
		{name: "namespace VM, VM side failing", netns: true, fail: func(h *harness) { h.vms.failOn("plug") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, setup{})
			first := h.attach(1, 100, tt.netns)
			h.drain()
			tt.fail(h)
			again, err := h.d.Attach(context.Background(), attachReq(1, 100, tt.netns))
			if err != nil {
				t.Fatalf("repeated Attach: %v", err)
			}
			diff(t, "repeated attach", vmText(again)+"\n", vmText(first)+"\n")
			diff(t, "kernel calls", h.kernel.takeCalls(), "")
			diff(t, "VM side calls", h.vms.takeCalls(), "")
			diff(t, "store", h.storeText(false), "vm1/net0 52:54:00:00:00:01 vlan 100 on pf0 vf 0\n")
			h.kernel.heal()
			h.vms.heal()
			next := h.attach(2, 0, false)
			if next.GetPf() == first.GetPf() && next.GetVf() == first.GetVf() {
				t.Errorf("vm2 got %s vf %d, which vm1 holds", next.GetPf(), next.GetVf())
			}
		})
	}
}

func TestDetach(t *testing.T) {
	tests := []struct {
		name        string
		vm, iface   string
		want        string // the released interfaces
		wantCalls   string
		wantVMCalls string
		wantVMs     string
	}{{
		name:        "a namespace VM",
		vm:          "vm1",
		want:        "vm1/net0 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf0 vf 0 (0000:01:10.0) netns vm1\n",
		wantCalls:   "reset pf0 vf 0\n",
		wantVMCalls: "unplug vm1\n",
		wantVMs: lines(
			"vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off on pf0 vf 1 (0000:01:10.1)",
			"vm2/net1 52:54:00:00:00:03 vlan 0 qos 0 trust off on pf0 vf 2 (0000:01:10.2)",
		),
	}, {
		name: "every interface of a VM",
		vm:   "vm2",
		want: lines(
			"vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off on pf0 vf 1 (0000:01:10.1)",
			"vm2/net1 52:54:00:00:00:03 vlan 0 qos 0 trust off on pf0 vf 2 (0000:01:10.2)",
		),
		wantCalls: "reset pf0 vf 1\nreset pf0 vf 2\n",
		wantVMs:   "vm1/net0 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf0 vf 0 (0000:01:10.0) netns vm1\n",
	}, {
		name:      "one interface of a VM",
		vm:        "vm2",
		iface:     "net1",
		want:      "vm2/net1 52:54:00:00:00:03 vlan 0 qos 0 trust off on pf0 vf 2 (0000:01:10.2)\n",
		wantCalls: "reset pf0 vf 2\n",
		wantVMs: lines(
			"vm1/net0 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf0 vf 0 (0000:01:10.0) netns vm1",
			"vm2/net0 52:54:00:00:00:02 vlan 0 qos 0 trust off on pf0 vf 1 (0000:01:10.1)",
		),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, setup{})
			h.attach(1, 100, true)
			h.attach(2, 0, false)
			if _, err := h.d.Attach(context.Background(), &vflagpb.AttachRequest{Vm: "vm2", Iface: "net1", Mac: testMAC(3)}); err != nil {
				t.Fatal(err)
			}
			h.drain()
			got, err := h.d.Detach(context.Background(), tt.vm, tt.iface)
			if err != nil {
				t.Fatalf("Detach: %v", err)
			}
			var released []string
			for _, i := range got {
				released = append(released, vmText(i))
			}
			diff(t, "released", lines(released...), tt.want)
			diff(t, "kernel calls", h.kernel.takeCalls(), tt.wantCalls)
			diff(t, "VM side calls", h.vms.takeCalls(), tt.wantVMCalls)
			diff(t, "VMs", h.vmsText(), tt.wantVMs)
			diff(t, "store", h.storeText(false), h.tableText())
			if tt.iface == "" {
				if _, err := h.d.ListVMs(context.Background(), tt.vm); !errors.Is(err, vfmgr.ErrNotManaged) {
					t.Errorf("ListVMs(%s) after detach: %v, want ErrNotManaged", tt.vm, err)
				}
			}
			// The VFs are free again: the next VM gets the lowest.
			if i := h.attach(9, 0, false); i.GetPf() != "pf0" || i.GetVf() != got[0].GetVf() {
				t.Errorf("after detach the next VM got %s vf %d, want pf0 vf %d", i.GetPf(), i.GetVf(), got[0].GetVf())
			}
		})
	}
}

func TestDetachUnknown(t *testing.T) {
	h := started(t, setup{})
	h.attach(1, 0, false)
	h.drain()
	for _, c := range []struct{ vm, iface string }{{"vm2", ""}, {"vm1", "net7"}} {
		if got, err := h.d.Detach(context.Background(), c.vm, c.iface); !errors.Is(err, vfmgr.ErrNotManaged) {
			t.Errorf("Detach(%q, %q) = %v, %v; want ErrNotManaged", c.vm, c.iface, got, err)
		}
	}
	diff(t, "kernel calls", h.kernel.takeCalls(), "")
	diff(t, "VMs", h.vmsText(), "vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off on pf0 vf 0 (0000:01:10.0)\n")
}

// TestDetachResetFails checks that a VF whose reset fails stays allocated:
// it still carries the VM's MAC, so handing it out would give it twice.
func TestDetachResetFails(t *testing.T) {
	h := started(t, setup{})
	h.attach(1, 0, false)
	h.drain()
	h.kernel.failOn("reset pf0 vf 0")
	if _, err := h.d.Detach(context.Background(), "vm1", ""); !errors.Is(err, errInjected) {
		t.Fatalf("Detach: %v, want the injected failure", err)
	}
	diff(t, "VMs", h.vmsText(), "vm1/net0 52:54:00:00:00:01 vlan 0 qos 0 trust off on pf0 vf 0 (0000:01:10.0)\n")
	diff(t, "store", h.storeText(false), "vm1/net0 52:54:00:00:00:01 vlan 0 on pf0 vf 0\n")
}
