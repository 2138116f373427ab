package vfmgr

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// t0 is the start of the canned scenarios.
var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// ms is t0 plus n milliseconds.
func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// testMAC is the n-th VM's MAC: 52:54:00:00:HH:LL.
func testMAC(n int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0, 0, byte(n >> 8), byte(n)}
}

// vfPCI is a realistic PCI address of VF idx of port pi: eight functions a
// device, from device 0x10 on.
func vfPCI(pi, idx int) string { return fmt.Sprintf("0000:0%d:%02x.%d", pi+1, 0x10+idx/8, idx%8) }

// poolOpts describe a test pool: bond0 over pf0 and pf1.
type poolOpts struct {
	policy   Policy
	failback time.Duration
	vfs      [2]int  // VFs per PF (4 each when zero)
	down     [2]bool // PFs without carrier
	active   string  // "pf0" when empty; "-" for none
	libvirt  bool    // vflagd's libvirt side is on
}

// newTestPool builds bond0 from o.
func newTestPool(t testing.TB, o poolOpts) *Pool {
	t.Helper()
	return newNamedPool(t, "bond0", [2]string{"pf0", "pf1"}, o)
}

// newNamedPool builds a pool of the given bond and PFs from o.
func newNamedPool(t testing.TB, bond string, pfs [2]string, o poolOpts) *Pool {
	t.Helper()
	spec := PoolSpec{Bond: bond, Policy: o.policy, FailbackAfter: o.failback, Active: o.active, At: t0, Libvirt: o.libvirt}
	if spec.Policy == "" {
		spec.Policy = ActiveFirst
	}
	switch spec.Active {
	case "":
		spec.Active = pfs[0]
	case "-":
		spec.Active = ""
	}
	for pi, name := range pfs {
		spec.PFs[pi] = PF{Name: name, PCI: fmt.Sprintf("0000:0%d:00.0", pi+1), Driver: "igb", Bond: bond, Carrier: !o.down[pi]}
		n := o.vfs[pi]
		if n == 0 {
			n = 4
		}
		for i := range n {
			spec.VFs[pi] = append(spec.VFs[pi], VF{PF: name, Index: i, PCI: vfPCI(pi, i)})
		}
	}
	p, err := NewPool(spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestState builds a State of the given pools.
func newTestState(t testing.TB, pools ...*Pool) State {
	t.Helper()
	s, err := NewState(pools...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// vmReq asks for VM vm<n>'s interface net0 on bond0, with MAC testMAC(n)
// and address 192.0.2.<n>.
func vmReq(n int) Request {
	return Request{
		VM: fmt.Sprintf("vm%d", n), Iface: "net0", Bond: "bond0", MAC: testMAC(n),
		Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(n)})}, At: t0,
	}
}

// mustAllocate allocates VMs first..last on s.
func mustAllocate(t testing.TB, s State, first, last int) {
	t.Helper()
	for n := first; n <= last; n++ {
		if _, err := s.Allocate(vmReq(n)); err != nil {
			t.Fatal(err)
		}
	}
}

// mustApply plans ev on s, applies it and returns the new State.
func mustApply(t testing.TB, s State, ev Event) State {
	t.Helper()
	pl := s.Plan(ev)
	if pl.Skip != nil {
		t.Fatalf("plan %s: %v", ev, pl.Skip)
	}
	return s.Apply(pl)
}

// lines joins golden-text lines, each ending in a newline.
func lines(s ...string) string { return strings.Join(s, "\n") + "\n" }

// diff reports got != want with both texts.
func diff(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got\n%s--- want\n%s", what, got, want)
	}
}

// checkInvariants checks what must hold after every step: the State's own
// invariants, and that no VM sits on a PF without carrier while its other
// PF has carrier, unless the plan that led here reported it unplaceable.
func checkInvariants(t *testing.T, s State, pl *Plan) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("state invariants: %v\n%s", err, s)
	}
	if pl == nil || pl.Skip != nil {
		return
	}
	reported := map[string]bool{}
	for _, u := range pl.Unplaceable {
		reported[u.Key] = true
	}
	for _, b := range s.Bonds() {
		if b.Bond != pl.Event.Bond {
			continue
		}
		p, _ := s.Pool(b.Bond)
		for _, a := range p.Allocations() {
			here, _ := b.port(a.VF.PF)
			other := b.Ports[0]
			if other.PF == here.PF {
				other = b.Ports[1]
			}
			if !here.Carrier && other.Carrier && !reported[a.Key()] {
				t.Fatalf("%s stays on %s without carrier though %s has carrier, unreported\n%s", a.Key(), a.VF, other.PF, s)
			}
		}
	}
}
