package vfmgr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// adoptReq asks for VM vm<n>'s interface net0 to get exactly the VF at pci.
func adoptReq(n int, pci string, mode Mode) Request {
	r := vmReq(n)
	r.Bond, r.PCI, r.Mode = "", pci, mode
	return r
}

func TestAllocatePCI(t *testing.T) {
	tests := []struct {
		name    string
		opts    poolOpts
		before  []Request
		req     Request
		want    string // the allocation: key, VF, mode
		wantErr error
		errText string // the error names these
	}{{
		name: "a free VF of the active PF",
		req:  adoptReq(1, vfPCI(0, 2), ModeAdopt),
		want: "vm1/net0 pf0 vf 2 adopt",
	}, {
		name: "a free VF of the backup PF: libvirt or Nova chose it",
		req:  adoptReq(1, vfPCI(1, 3), ModeHotswap),
		want: "vm1/net0 pf1 vf 3 hotswap",
	}, {
		name: "a VF of a PF without carrier: the VM is placed already",
		opts: poolOpts{down: [2]bool{false, true}},
		req:  adoptReq(1, vfPCI(1, 0), ModeFailover),
		want: "vm1/net0 pf1 vf 0 failover",
	}, {
		name:   "the VF the interface holds: a repeated hook",
		before: []Request{adoptReq(1, vfPCI(0, 1), ModeAdopt)},
		req:    adoptReq(1, vfPCI(0, 1), ModeAdopt),
		want:   "vm1/net0 pf0 vf 1 adopt",
	}, {
		name:   "the VF the policy gave: the migrate hook allocated, the start hook adopts",
		before: []Request{func() Request { r := vmReq(1); r.Mode = ModeHotswap; return r }()},
		req:    adoptReq(1, vfPCI(0, 0), ModeHotswap),
		want:   "vm1/net0 pf0 vf 0 hotswap",
	}, {
		name:    "a VF another VM holds",
		before:  []Request{adoptReq(2, vfPCI(0, 1), ModeAdopt)},
		req:     adoptReq(1, vfPCI(0, 1), ModeAdopt),
		wantErr: ErrVFHeld,
		errText: "pf0 vf 1 (0000:01:10.1) is held by vm2/net0",
	}, {
		name:    "another VF than the one the interface holds",
		before:  []Request{adoptReq(1, vfPCI(0, 1), ModeAdopt)},
		req:     adoptReq(1, vfPCI(0, 2), ModeAdopt),
		wantErr: ErrAllocated,
		errText: "VF 0000:01:10.1",
	}, {
		name:    "another mode than the one the interface holds",
		before:  []Request{adoptReq(1, vfPCI(0, 1), ModeAdopt)},
		req:     adoptReq(1, vfPCI(0, 1), ModeHotswap),
		wantErr: ErrAllocated,
		errText: `mode "adopt"`,
	}, {
		name:    "a PF, not a VF",
		req:     adoptReq(1, "0000:01:00.0", ModeAdopt),
		wantErr: ErrNotManaged,
		errText: "0000:01:00.0",
	}, {
		name:    "a VF beyond the VFs vflag uses",
		opts:    poolOpts{vfs: [2]int{2, 2}},
		req:     adoptReq(1, vfPCI(0, 3), ModeAdopt),
		wantErr: ErrNotManaged,
		errText: "0000:01:10.3 for vm1/net0: not a VF vflag uses on any managed bond (bond0: pf0 0000:01:00.0, pf1 0000:02:00.0)",
	}, {
		name:    "an address not in canonical form",
		req:     adoptReq(1, "0000:01:10.2 ", ModeAdopt),
		wantErr: ErrInvalid,
		errText: `pci "0000:01:10.2 "`,
	}, {
		name:    "an unknown mode",
		req:     adoptReq(1, vfPCI(0, 1), "bonding"),
		wantErr: ErrInvalid,
		errText: `mode "bonding"`,
	}, {
		name:    "the MAC of another VM",
		before:  []Request{vmReq(1)},
		req:     func() Request { r := adoptReq(2, vfPCI(0, 3), ModeAdopt); r.MAC = testMAC(1); return r }(),
		wantErr: ErrDuplicateMAC,
		errText: "held by vm1/net0",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestState(t, newTestPool(t, tt.opts))
			for _, r := range tt.before {
				if _, err := s.Allocate(r); err != nil {
					t.Fatal(err)
				}
			}
			before := s.String()
			a, err := s.Allocate(tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Allocate = %v, %v; want an error wrapping %q that names %q", a, err, tt.wantErr, tt.errText)
				}
				diff(t, "state after the refusal", s.String(), before)
				return
			}
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			diff(t, "allocation", fmt.Sprintf("%s %s %s\n", a.Key(), a.VF, a.Mode), tt.want+"\n")
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			got, _ := s.Allocation(a.Key())
			if got.Mode != tt.req.Mode || got.Home != a.VF.PF {
				t.Errorf("the table has %+v; want mode %q and home %s", got, tt.req.Mode, a.VF.PF)
			}
		})
	}
}

// TestAllocatePCIFindsTheBond checks that an adopt request without a bond
// goes to the bond that has the VF, and one naming another bond is refused.
func TestAllocatePCIFindsTheBond(t *testing.T) {
	other := func() *Pool {
		spec := PoolSpec{Bond: "bond1", Policy: ActiveFirst, Active: "pf2", At: t0}
		for pi, name := range []string{"pf2", "pf3"} {
			spec.PFs[pi] = PF{Name: name, PCI: fmt.Sprintf("0000:8%d:00.0", pi), Bond: "bond1", Carrier: true}
			spec.VFs[pi] = []VF{{PF: name, Index: 0, PCI: fmt.Sprintf("0000:8%d:10.0", pi)}}
		}
		p, err := NewPool(spec)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}()
	s := newTestState(t, newTestPool(t, poolOpts{}), other)
	a, err := s.Allocate(adoptReq(1, "0000:81:10.0", ModeAdopt))
	if err != nil || a.Bond != "bond1" || a.VF != (VFRef{PF: "pf3", Index: 0}) {
		t.Fatalf("Allocate = %+v, %v; want pf3 vf 0 of bond1", a, err)
	}
	r := adoptReq(2, "0000:80:10.0", ModeAdopt)
	r.Bond = "bond0"
	if _, err := s.Allocate(r); !errors.Is(err, ErrNotManaged) || !strings.Contains(err.Error(), "0000:80:10.0") {
		t.Fatalf("adopting a VF of bond1 on bond0: %v; want ErrNotManaged naming the address", err)
	}
}

func TestCanonicalPCI(t *testing.T) {
	for in, want := range map[string]string{
		"0000:01:10.2": "0000:01:10.2",
		"0000:AF:1F.7": "0000:af:1f.7",
		"01:10.2":      "0000:01:10.2",
		"1:2.3":        "0000:01:02.3",
		"ffff:ff:1f.7": "ffff:ff:1f.7",
	} {
		if got, err := CanonicalPCI(in); err != nil || got != want {
			t.Errorf("CanonicalPCI(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0000:01:10", "0000:01:20.0", "0000:01:10.8", "00000:01:10.0", "0000:100:10.0", "x:01:10.0", "0000:01:10.-1", "0000:01::10.0", "a:b:c:d.e"} {
		if got, err := CanonicalPCI(in); err == nil {
			t.Errorf("CanonicalPCI(%q) = %q; want an error", in, got)
		}
	}
}
