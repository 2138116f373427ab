package vfmgr

import (
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

func TestAllocatePolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    poolOpts
		vms     int      // VMs 1..vms allocated in order
		release []string // keys released afterwards
		then    int      // further VMs allocated after the releases
		want    string   // Pool.String()
	}{
		{
			name: "active-first takes the active PF",
			opts: poolOpts{policy: ActiveFirst},
			vms:  3,
			want: lines(
				"bond0 active-first active pf0: pf0 up 3/4, pf1 up 0/4",
				"  pf0: vf0 vm1/net0, vf1 vm2/net0, vf2 vm3/net0",
				"  pf1: -"),
		},
		{
			name: "active-first follows the active PF",
			opts: poolOpts{policy: ActiveFirst, active: "pf1"},
			vms:  2,
			want: lines(
				"bond0 active-first active pf1: pf0 up 0/4, pf1 up 2/4",
				"  pf0: -",
				"  pf1: vf0 vm1/net0, vf1 vm2/net0"),
		},
		{
			name: "active-first spills to the backup PF",
			opts: poolOpts{policy: ActiveFirst, vfs: [2]int{3, 3}},
			vms:  5,
			want: lines(
				"bond0 active-first active pf0: pf0 up 3/3, pf1 up 2/3",
				"  pf0: vf0 vm1/net0, vf1 vm2/net0, vf2 vm3/net0",
				"  pf1: vf0 vm4/net0, vf1 vm5/net0"),
		},
		{
			name: "active-first refills the active PF after a release",
			opts: poolOpts{policy: ActiveFirst, vfs: [2]int{2, 2}},
			vms:  3, release: []string{"vm1/net0"}, then: 1,
			want: lines(
				"bond0 active-first active pf0: pf0 up 2/2, pf1 up 1/2",
				"  pf0: vf0 vm4/net0, vf1 vm2/net0",
				"  pf1: vf0 vm3/net0"),
		},
		{
			name: "active-first skips an active PF without carrier",
			opts: poolOpts{policy: ActiveFirst, down: [2]bool{true, false}},
			vms:  2,
			want: lines(
				"bond0 active-first active pf0: pf0 down 0/4, pf1 up 2/4",
				"  pf0: -",
				"  pf1: vf0 vm1/net0, vf1 vm2/net0"),
		},
		{
			name: "active-first without active port uses the first PF",
			opts: poolOpts{policy: ActiveFirst, active: "-"},
			vms:  1,
			want: lines(
				"bond0 active-first active (none): pf0 up 1/4, pf1 up 0/4",
				"  pf0: vf0 vm1/net0",
				"  pf1: -"),
		},
		{
			name: "balance alternates, ties to the active PF",
			opts: poolOpts{policy: Balance, active: "pf1"},
			vms:  5,
			want: lines(
				"bond0 balance active pf1: pf0 up 2/4, pf1 up 3/4",
				"  pf0: vf0 vm2/net0, vf1 vm4/net0",
				"  pf1: vf0 vm1/net0, vf1 vm3/net0, vf2 vm5/net0"),
		},
		{
			name: "balance fills the emptier PF after releases",
			opts: poolOpts{policy: Balance},
			vms:  4, release: []string{"vm1/net0", "vm3/net0"}, then: 2,
			want: lines(
				"bond0 balance active pf0: pf0 up 2/4, pf1 up 2/4",
				"  pf0: vf0 vm5/net0, vf1 vm6/net0",
				"  pf1: vf0 vm2/net0, vf1 vm4/net0"),
		},
		{
			name: "balance uses only PFs with carrier",
			opts: poolOpts{policy: Balance, down: [2]bool{false, true}},
			vms:  3,
			want: lines(
				"bond0 balance active pf0: pf0 up 3/4, pf1 down 0/4",
				"  pf0: vf0 vm1/net0, vf1 vm2/net0, vf2 vm3/net0",
				"  pf1: -"),
		},
		{
			name: "balance spills when one PF is full",
			opts: poolOpts{policy: Balance, vfs: [2]int{1, 4}},
			vms:  4,
			want: lines(
				"bond0 balance active pf0: pf0 up 1/1, pf1 up 3/4",
				"  pf0: vf0 vm1/net0",
				"  pf1: vf0 vm2/net0, vf1 vm3/net0, vf2 vm4/net0"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newTestPool(t, tt.opts)
			for n := 1; n <= tt.vms+tt.then; n++ {
				if n == tt.vms+1 {
					for _, key := range tt.release {
						if _, err := p.Release(key); err != nil {
							t.Fatal(err)
						}
					}
				}
				a, err := p.Allocate(vmReq(n))
				if err != nil {
					t.Fatal(err)
				}
				if a.Home != a.VF.PF {
					t.Errorf("%s: home %s, placed on %s", a.Key(), a.Home, a.VF)
				}
			}
			if len(tt.release) > 0 && tt.then == 0 {
				t.Fatal("test case releases nothing")
			}
			diff(t, "pool", p.String(), tt.want)
			if err := newTestState(t, p).Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestAllocateErrors(t *testing.T) {
	t.Parallel()
	upper, _ := net.ParseMAC("52:54:00:AA:BB:01")
	lower, _ := net.ParseMAC("52:54:00:aa:bb:01")
	tests := []struct {
		name    string
		opts    poolOpts
		vms     int // VMs 1..vms allocated first
		req     func(Request) Request
		wantErr error
		want    string // substring of the error
	}{
		{
			name: "exhausted", opts: poolOpts{vfs: [2]int{2, 2}}, vms: 4,
			wantErr: ErrNoFreeVF,
			want:    "allocate VF for vm9/net0 on bond0 (pf0 2/2 used; pf1 2/2 used): no free VF",
		},
		{
			name: "free VFs only on a PF without carrier", opts: poolOpts{vfs: [2]int{2, 2}, down: [2]bool{false, true}}, vms: 2,
			wantErr: ErrNoFreeVF,
			want:    "(pf0 2/2 used; pf1 0/2 used, no carrier): no free VF",
		},
		{
			name: "no carrier at all", opts: poolOpts{policy: Balance, down: [2]bool{true, true}},
			wantErr: ErrNoFreeVF,
			want:    "(pf0 0/4 used, no carrier; pf1 0/4 used, no carrier)",
		},
		{
			name: "duplicate MAC, other case", vms: 0,
			req:     func(r Request) Request { r.VM, r.MAC = "vm2", upper; return r },
			wantErr: ErrDuplicateMAC,
			want:    "MAC 52:54:00:aa:bb:01 is held by vm1/net0: MAC already allocated",
		},
		{
			name: "multicast MAC", req: func(r Request) Request { r.MAC = net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}; return r },
			wantErr: ErrInvalid, want: "mac 01:00:5e:00:00:01: multicast",
		},
		{
			name: "broadcast MAC", req: func(r Request) Request { r.MAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; return r },
			wantErr: ErrInvalid, want: "multicast",
		},
		{
			name: "zero MAC", req: func(r Request) Request { r.MAC = make(net.HardwareAddr, 6); return r },
			wantErr: ErrInvalid, want: "mac 00:00:00:00:00:00: all zeros",
		},
		{
			name: "EUI-64 MAC", req: func(r Request) Request { r.MAC = make(net.HardwareAddr, 8); r.MAC[7] = 1; return r },
			wantErr: ErrInvalid, want: "not an EUI-48 address",
		},
		{
			name: "VLAN 4095", req: func(r Request) Request { r.VLAN = 4095; return r },
			wantErr: ErrInvalid, want: "vlan 4095 out of range 0..4094: invalid request",
		},
		{
			name: "negative VLAN", req: func(r Request) Request { r.VLAN = -1; return r },
			wantErr: ErrInvalid, want: "vlan -1 out of range",
		},
		{
			name: "QoS 8", req: func(r Request) Request { r.VLAN, r.QoS = 100, 8; return r },
			wantErr: ErrInvalid, want: "qos 8 out of range 0..7",
		},
		{
			name: "no VM", req: func(r Request) Request { r.VM = ""; return r },
			wantErr: ErrInvalid, want: "vm: empty",
		},
		{
			name: "slash in the VM name", req: func(r Request) Request { r.VM = "a/b"; return r },
			wantErr: ErrInvalid, want: `vm "a/b": contains '/'`,
		},
		{
			name: "same interface, other VLAN", vms: 1,
			req:     func(r Request) Request { r.VLAN = 7; return r },
			wantErr: ErrAllocated,
			want:    "allocate VF for vm1/net0 on bond0: holds pf0 vf 0 with MAC 52:54:00:00:00:01 vlan 0 qos 0 trust false",
		},
		{
			name: "other bond", req: func(r Request) Request { r.Bond = "bond1"; return r },
			wantErr: ErrNotManaged, want: "bond bond1 is not bond0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newTestPool(t, tt.opts)
			if strings.HasPrefix(tt.name, "duplicate MAC") {
				r := vmReq(1)
				r.MAC = lower
				if _, err := p.Allocate(r); err != nil {
					t.Fatal(err)
				}
			}
			for n := 1; n <= tt.vms; n++ {
				if _, err := p.Allocate(vmReq(n)); err != nil {
					t.Fatal(err)
				}
			}
			before := p.String()
			req := vmReq(9)
			if tt.vms == 1 {
				req = vmReq(1)
			}
			if tt.req != nil {
				req = tt.req(req)
			}
			_, err := p.Allocate(req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
			diff(t, "pool after a failed allocation", p.String(), before)
		})
	}
}

func TestAllocateRepeatedRequest(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, poolOpts{})
	first, err := p.Allocate(vmReq(1))
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Allocate(vmReq(1))
	if err != nil {
		t.Fatal(err)
	}
	if again.VF != first.VF || again.Key() != first.Key() {
		t.Errorf("repeated request got %s, first %s", again.VF, first.VF)
	}
	if used := p.Status().Ports[0].Used; used != 1 {
		t.Errorf("pf0 has %d used VFs, want 1", used)
	}
}

func TestAllocateDefaultIface(t *testing.T) {
	t.Parallel()
	s := newTestState(t, newTestPool(t, poolOpts{}))
	r := vmReq(1)
	r.Iface, r.Bond = "", "" // one bond: Bond may be empty
	a, err := s.Allocate(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Key(), "vm1/52:54:00:00:00:01"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	if a.Bond != "bond0" {
		t.Errorf("bond %q, want bond0", a.Bond)
	}
}

func TestStateAllocateAcrossBonds(t *testing.T) {
	t.Parallel()
	s := newTestState(t,
		newTestPool(t, poolOpts{}),
		newNamedPool(t, "bond1", [2]string{"pf2", "pf3"}, poolOpts{}))
	mustAllocate(t, s, 1, 1)

	r := vmReq(1)
	r.VM, r.Bond = "vm7", "bond1"
	if _, err := s.Allocate(r); !errors.Is(err, ErrDuplicateMAC) || !strings.Contains(err.Error(), "held by vm1/net0 on bond0") {
		t.Errorf("same MAC on another bond: err = %v, want ErrDuplicateMAC naming vm1/net0 on bond0", err)
	}
	r = vmReq(1)
	r.Bond, r.MAC = "bond1", testMAC(100)
	if _, err := s.Allocate(r); !errors.Is(err, ErrAllocated) {
		t.Errorf("same key on another bond: err = %v, want ErrAllocated", err)
	}
	r = vmReq(2)
	r.Bond = ""
	if _, err := s.Allocate(r); !errors.Is(err, ErrNotManaged) {
		t.Errorf("no bond with two managed: err = %v, want ErrNotManaged", err)
	}
	r.Bond = "bond1"
	a, err := s.Allocate(r)
	if err != nil {
		t.Fatal(err)
	}
	if a.VF.PF != "pf2" {
		t.Errorf("vm2 on %s, want pf2", a.VF)
	}
}

func TestRelease(t *testing.T) {
	t.Parallel()
	s := newTestState(t, newTestPool(t, poolOpts{}))
	mustAllocate(t, s, 1, 3)
	a, err := s.Release("vm2/net0")
	if err != nil {
		t.Fatal(err)
	}
	if a.VF != (VFRef{PF: "pf0", Index: 1}) {
		t.Errorf("released %s, want pf0 vf 1", a.VF)
	}
	if _, err := s.Release("vm2/net0"); !errors.Is(err, ErrNotManaged) {
		t.Errorf("second release: err = %v, want ErrNotManaged", err)
	}
	// The MAC is free again, and the lowest VF is reused.
	b, err := s.Allocate(vmReq(2))
	if err != nil {
		t.Fatal(err)
	}
	if b.VF != a.VF {
		t.Errorf("reallocated %s, want %s", b.VF, a.VF)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

func TestAdopt(t *testing.T) {
	t.Parallel()
	a := Allocation{VM: "vm1", Iface: "net0", MAC: testMAC(1), Bond: "bond0", VF: VFRef{PF: "pf1", Index: 2}}
	tests := []struct {
		name    string
		adopt   []Allocation
		wantErr error
		want    string
	}{
		{name: "ok", adopt: []Allocation{a}},
		{name: "twice", adopt: []Allocation{a, a}, wantErr: ErrAllocated, want: "adopt vm1/net0 on pf1 vf 2 (0000:02:10.2)"},
		{
			name:    "VF held",
			adopt:   []Allocation{a, func() Allocation { b := a; b.VM, b.MAC = "vm2", testMAC(2); return b }()},
			wantErr: ErrVFHeld, want: "pf1 vf 2 (0000:02:10.2) is held by vm1/net0",
		},
		{
			name:    "MAC held",
			adopt:   []Allocation{a, func() Allocation { b := a; b.VM, b.VF.Index = "vm2", 3; return b }()},
			wantErr: ErrDuplicateMAC, want: "MAC 52:54:00:00:00:01 is held by vm1/net0",
		},
		{
			name:    "VF beyond the pool",
			adopt:   []Allocation{func() Allocation { b := a; b.VF.Index = 9; return b }()},
			wantErr: ErrNotManaged, want: "pf1 vf 9 is not a usable VF of bond0",
		},
		{
			name:    "other bond",
			adopt:   []Allocation{func() Allocation { b := a; b.Bond = "bond7"; return b }()},
			wantErr: ErrNotManaged, want: `bond "bond7"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestState(t, newTestPool(t, poolOpts{}))
			var err error
			for _, a := range tt.adopt {
				if err = s.Adopt(a); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.wantErr) || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.want)
			}
			if err := s.Check(); err != nil {
				t.Error(err)
			}
			if got, ok := s.Allocation("vm1/net0"); ok && got.Home != "pf1" {
				t.Errorf("home %q, want pf1 (the VF's PF when unset)", got.Home)
			}
		})
	}
}

// TestRandomOps runs 10,000 random allocations, releases and bond events
// on two bonds and checks the invariants after each: no VF held twice, no
// MAC held twice, the counts agree, no new VF on a PF without carrier,
// every plan keeps the number of allocations and leaves no VM on a PF
// without carrier while the other has carrier, unless it says so.
func TestRandomOps(t *testing.T) {
	t.Parallel()
	for _, policy := range []Policy{ActiveFirst, Balance} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(len(policy))))
			s := newTestState(t,
				newTestPool(t, poolOpts{policy: policy, failback: 30 * time.Second, vfs: [2]int{7, 5}}),
				newNamedPool(t, "bond1", [2]string{"pf2", "pf3"}, poolOpts{policy: policy, vfs: [2]int{3, 3}}))
			bonds := [2]string{"bond0", "bond1"}
			pfs := [2][2]string{{"pf0", "pf1"}, {"pf2", "pf3"}}
			counts := map[string]int{}
			for _, a := range s.Allocations() {
				counts[a.Bond]++
			}
			var ok, full, moves, stranded int
			for op := range 10000 {
				at := ms(op)
				bi := rng.IntN(2)
				bond := bonds[bi]
				switch r := rng.IntN(100); {
				case r < 45: // allocate
					n := rng.IntN(40) + 1
					req := vmReq(n)
					req.Bond, req.At = bond, at
					if rng.IntN(4) == 0 {
						req.MAC = testMAC(rng.IntN(40) + 1) // maybe someone else's MAC
					}
					a, err := s.Allocate(req)
					switch {
					case err == nil:
						p, _ := s.Pool(bond)
						st, _ := p.Status().port(a.VF.PF)
						if !st.Carrier && a.Since.Equal(at) {
							t.Fatalf("op %d: %s got %s on a PF without carrier", op, a.Key(), a.VF)
						}
						if a.Since.Equal(at) {
							counts[bond]++
						}
						ok++
					case errors.Is(err, ErrNoFreeVF):
						full++
					case errors.Is(err, ErrDuplicateMAC), errors.Is(err, ErrAllocated):
					default:
						t.Fatalf("op %d: %v", op, err)
					}
					if err := s.Check(); err != nil {
						t.Fatalf("op %d: %v", op, err)
					}
				case r < 80: // release
					all := s.Allocations()
					if len(all) == 0 {
						continue
					}
					a := all[rng.IntN(len(all))]
					if _, err := s.Release(a.Key()); err != nil {
						t.Fatalf("op %d: %v", op, err)
					}
					counts[a.Bond]--
				default: // a bond event
					pf := pfs[bi][rng.IntN(2)]
					ev := Event{Bond: bond, PF: pf, At: at}
					switch rng.IntN(5) {
					case 0:
						ev.Kind = ActiveChanged
					case 1:
						ev.Kind = CarrierLost
					case 2:
						ev.Kind = CarrierRegained
					case 3:
						ev.Kind, ev.At = FailbackDue, at
					case 4:
						ev.Kind = Reconcile
					}
					pl := s.Plan(ev)
					next := s.Apply(pl)
					checkInvariants(t, next, &pl)
					moves += len(pl.Moves)
					for _, u := range pl.Unplaceable {
						if u.Stranded {
							stranded++
						}
					}
					if got := len(next.Allocations()); got != len(s.Allocations()) {
						t.Fatalf("op %d: %s changed the number of allocations from %d to %d", op, ev, len(s.Allocations()), got)
					}
					s = next
				}
				for _, b := range bonds {
					p, _ := s.Pool(b)
					if got := len(p.Allocations()); got != counts[b] {
						t.Fatalf("op %d: %s has %d allocations, want %d", op, b, got, counts[b])
					}
				}
			}
			if ok < 1000 || full < 100 || moves < 100 || stranded < 10 {
				t.Errorf("random run too tame: %d allocations, %d refused for want of VFs, %d moves, %d stranded", ok, full, moves, stranded)
			}
			t.Logf("%d allocations, %d refused for want of VFs, %d moves, %d stranded", ok, full, moves, stranded)
		})
	}
}
