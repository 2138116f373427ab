package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/vfmgr"
)

// adoptReq is what the libvirt hook asks once libvirt or the domain XML
// has chosen the VF: VM vm<n>'s interface keyed by its MAC, the VF at pci.
func adoptReq(n int, pci string, vlan uint32, mode string) *vflagpb.AttachRequest {
	return &vflagpb.AttachRequest{
		Vm: vmName(n), Mac: testMAC(n), Vlan: vlan, Pci: pci, Mode: mode,
		DomainUuid: "c7a5fdbd-cdaf-9455-926a-d65c16db1809",
	}
}

func vmName(n int) string { return fmt.Sprintf("vm%d", n) }

func TestAttachAdopts(t *testing.T) {
	tests := []struct {
		name      string
		setup     setup
		before    []*vflagpb.AttachRequest
		req       *vflagpb.AttachRequest
		want      string // the interface returned
		wantMode  string
		wantCalls string
		wantVFs   string
	}{{
		name:      "a VF of the active PF that libvirt's pool chose",
		req:       adoptReq(1, "0000:01:10.2", 100, "hotswap"),
		want:      "vm1/52:54:00:00:00:01 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf0 vf 2 (0000:01:10.2)",
		wantMode:  "hotswap",
		wantCalls: "configure pf0 vf 2 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off\n",
		wantVFs:   "pf0 vf 2 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off\n",
	}, {
		name:      "a VF of the backup PF that Nova chose, address without PCI domain",
		req:       adoptReq(1, "02:10.3", 0, "adopt"),
		want:      "vm1/52:54:00:00:00:01 52:54:00:00:00:01 vlan 0 qos 0 trust off on pf1 vf 3 (0000:02:10.3)",
		wantMode:  "adopt",
		wantCalls: "configure pf1 vf 3 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off\n",
		wantVFs:   "pf1 vf 3 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off\n",
	}, {
		name:      "no mode: a VF someone else placed is adopted",
		req:       adoptReq(1, "0000:01:10.0", 0, ""),
		want:      "vm1/52:54:00:00:00:01 52:54:00:00:00:01 vlan 0 qos 0 trust off on pf0 vf 0 (0000:01:10.0)",
		wantMode:  "adopt",
		wantCalls: "configure pf0 vf 0 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off\n",
		wantVFs:   "pf0 vf 0 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off\n",
	}, {
		name:     "no mode on a repeat: the interface keeps its mode (reconnect)",
		before:   []*vflagpb.AttachRequest{adoptReq(1, "0000:01:10.1", 0, "hotswap")},
		req:      adoptReq(1, "0000:01:10.1", 0, ""),
		want:     "vm1/52:54:00:00:00:01 52:54:00:00:00:01 vlan 0 qos 0 trust off on pf0 vf 1 (0000:01:10.1)",
		wantMode: "hotswap",
		wantVFs:  "pf0 vf 1 mac 52:54:00:00:00:01 vlan 0 qos 0 spoofchk on trust off\n",
	}, {
		name:     "the VF the interface holds: the start hook after the prepare hook",
		before:   []*vflagpb.AttachRequest{adoptReq(1, "0000:01:10.1", 100, "failover")},
		req:      adoptReq(1, "0000:01:10.1", 100, "failover"),
		want:     "vm1/52:54:00:00:00:01 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf0 vf 1 (0000:01:10.1)",
		wantMode: "failover",
		wantVFs:  "pf0 vf 1 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, tt.setup)
			for _, r := range tt.before {
				if _, err := h.d.Attach(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			h.drain()
			req := tt.req
			got, err := h.d.Attach(context.Background(), req)
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			diff(t, "interface", vmText(got)+"\n", tt.want+"\n")
			if got.GetMode() != tt.wantMode || got.GetDomainUuid() != req.GetDomainUuid() {
				t.Errorf("mode %q, domain %q; want %q, %q", got.GetMode(), got.GetDomainUuid(), tt.wantMode, req.GetDomainUuid())
			}
			diff(t, "kernel calls", h.kernel.takeCalls(), tt.wantCalls)
			diff(t, "VFs with a MAC", h.kernel.vfsText(), tt.wantVFs)
			diff(t, "VM side calls", h.vms.takeCalls(), "")
			l, err := h.d.ListVMs(context.Background(), req.GetVm())
			if err != nil || len(l) != 1 || l[0].GetMode() != tt.wantMode {
				t.Fatalf("ListVMs(%s) = %v, %v", req.GetVm(), l, err)
			}
			diff(t, "store after reopening", h.storeText(true), h.tableText())
		})
	}
}

func TestAttachAdoptRefuses(t *testing.T) {
	tests := []struct {
		name   string
		setup  setup
		before []*vflagpb.AttachRequest
		req    *vflagpb.AttachRequest
		want   error
		names  string // the error names this
	}{{
		name:  "an address that is no VF of a managed PF",
		req:   adoptReq(1, "0000:05:10.1", 0, "adopt"),
		want:  vfmgr.ErrNotManaged,
		names: "VF 0000:05:10.1 for vm1/52:54:00:00:00:01: not a VF vflag uses on any managed bond (bond0: pf0 0000:01:00.0, pf1 0000:02:00.0)",
	}, {
		name:  "a PF's address",
		req:   adoptReq(1, "0000:01:00.0", 0, "adopt"),
		want:  vfmgr.ErrNotManaged,
		names: "0000:01:00.0",
	}, {
		name:  "a VF beyond vfs_per_pf",
		setup: setup{vfsPerPF: 2, numVFs: [2]int{4, 4}},
		req:   adoptReq(1, "0000:01:10.3", 0, "adopt"),
		want:  vfmgr.ErrNotManaged,
		names: "0000:01:10.3",
	}, {
		name:   "a VF another VM holds",
		before: []*vflagpb.AttachRequest{adoptReq(2, "0000:01:10.1", 0, "adopt")},
		req:    adoptReq(1, "0000:01:10.1", 0, "adopt"),
		want:   vfmgr.ErrVFHeld,
		names:  "pf0 vf 1 (0000:01:10.1) is held by vm2/52:54:00:00:00:02",
	}, {
		name:   "a VF the policy gave another VM",
		before: []*vflagpb.AttachRequest{attachReq(2, 0, false)},
		req:    adoptReq(1, "0000:01:10.0", 0, "hotswap"),
		want:   vfmgr.ErrVFHeld,
		names:  "held by vm2/net0",
	}, {
		name:   "another VF for an interface that holds one",
		before: []*vflagpb.AttachRequest{adoptReq(1, "0000:01:10.1", 0, "adopt")},
		req:    adoptReq(1, "0000:01:10.2", 0, "adopt"),
		want:   vfmgr.ErrAllocated,
		names:  "VF 0000:01:10.1",
	}, {
		name: "an address that does not parse",
		req:  adoptReq(1, "0000:01:10.2; reboot", 0, "adopt"),
		want: api.ErrInvalid,
	}, {
		name: "an unknown mode",
		req:  adoptReq(1, "0000:01:10.2", 0, "bond"),
		want: api.ErrInvalid,
	}, {
		name: "an address for a namespace VM",
		req: &vflagpb.AttachRequest{
			Vm: "vm1", Mac: testMAC(1), Pci: "0000:01:10.2", Netns: "vm1", NetnsIfname: "eth0",
		},
		want: api.ErrInvalid,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := started(t, tt.setup)
			for _, r := range tt.before {
				if _, err := h.d.Attach(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			h.drain()
			before, vfs := h.vmsText(), h.kernel.vfsText()
			got, err := h.d.Attach(context.Background(), tt.req)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.names) {
				t.Fatalf("Attach = %v, %v; want an error wrapping %q naming %q", got, err, tt.want, tt.names)
			}
			diff(t, "kernel calls", h.kernel.takeCalls(), "")
			diff(t, "VFs", h.kernel.vfsText(), vfs)
			diff(t, "VMs", h.vmsText(), before)
			diff(t, "store", h.storeText(false), h.tableText())
			diff(t, "events", h.takeEvents(), "")
		})
	}
}

// TestAttachAdoptFailureLeaksNothing checks that an adopted VF whose
// configuration fails is neither held nor left configured: the next
// attempt gets it.
func TestAttachAdoptFailureLeaksNothing(t *testing.T) {
	h := started(t, setup{})
	h.drain()
	h.kernel.failOn("configure pf1 vf 2")
	if got, err := h.d.Attach(context.Background(), adoptReq(1, "0000:02:10.2", 100, "adopt")); !errors.Is(err, errInjected) {
		t.Fatalf("Attach = %v, %v; want the injected failure", got, err)
	}
	diff(t, "VFs with a MAC", h.kernel.vfsText(), "")
	diff(t, "VMs", h.vmsText(), "")
	diff(t, "store", h.storeText(false), "")
	h.kernel.heal()
	got, err := h.d.Attach(context.Background(), adoptReq(1, "0000:02:10.2", 100, "adopt"))
	if err != nil || got.GetVfPci() != "0000:02:10.2" {
		t.Fatalf("retried Attach = %v, %v", got, err)
	}
	diff(t, "VFs with a MAC", h.kernel.vfsText(), "pf1 vf 2 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off\n")
}

// TestDetachAdopted checks that releasing an adopted VF resets it and frees
// it for the policy.
func TestDetachAdopted(t *testing.T) {
	h := started(t, setup{})
	if _, err := h.d.Attach(context.Background(), adoptReq(1, "0000:01:10.0", 0, "adopt")); err != nil {
		t.Fatal(err)
	}
	h.drain()
	rel, err := h.d.Detach(context.Background(), "vm1", "")
	if err != nil || len(rel) != 1 {
		t.Fatalf("Detach = %v, %v", rel, err)
	}
	diff(t, "kernel calls", h.kernel.takeCalls(), "reset pf0 vf 0\n")
	if i := h.attach(2, 0, false); i.GetVfPci() != "0000:01:10.0" {
		t.Errorf("the next VM got %s, want the released 0000:01:10.0", i.GetVfPci())
	}
}
