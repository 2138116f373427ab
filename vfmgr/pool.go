package vfmgr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy decides which PF of a bond a new VM's VF comes from, and which VMs
// follow the bond when its active port changes.
type Policy string

const (
	// ActiveFirst hands out VFs of the bond's active PF and spills to the
	// backup PF only when the active one has none free. When the bond's
	// active port changes, the VMs on the old active PF follow it to the new
	// one at once (the seed design: VFs follow the active PF).
	ActiveFirst Policy = "active-first"
	// Balance spreads VMs over both PFs that have carrier (active-active for
	// VMs; the bond stays active-backup for the host): a new VM goes to the
	// PF with fewer VMs, ties to the active PF. A VM moves only when its PF
	// loses carrier, and back to its home PF on failback.
	Balance Policy = "balance"
)

// Valid reports whether p is a policy vflag knows.
func (p Policy) Valid() bool { return p == ActiveFirst || p == Balance }

// PoolSpec is one managed bond as the daemon found it: its configuration
// and the inventory of its two PFs.
type PoolSpec struct {
	// Bond is the bond's netdev name.
	Bond string
	// Policy is the placement policy.
	Policy Policy
	// FailbackAfter is how long a PF must have had carrier before VMs move
	// back to it (0: never fail back).
	FailbackAfter time.Duration
	// PFs are the bond's two ports, in configured order; Carrier is their
	// link state at At.
	PFs [2]PF
	// VFs are the VFs vflag may hand out on each PF (PFs[i]'s in VFs[i]).
	// Only PF, Index and PCI are used.
	VFs [2][]VF
	// Active is the bond's active port ("" when it has none).
	Active string
	// At is when the inventory was taken; it stands in for "carrier since"
	// of the PFs that have carrier.
	At time.Time
	// Libvirt says vflagd can hand a running libvirt domain another VF
	// (vfmgr/virt: hot-unplug and hot-plug through libvirt), so that
	// interfaces of mode failover and hotswap are re-homed like any other.
	Libvirt bool
}

// Pool is one managed bond's VFs: which are free and which are held by
// which allocation, which PF is active and each PF's carrier. Its methods
// do no I/O. A Pool is not safe for concurrent use; the daemon owns one
// State and changes it from one goroutine.
type Pool struct {
	bond     string
	policy   Policy
	failback time.Duration
	libvirt  bool
	ports    [2]port
	active   string
	// allocs holds every allocation of the pool, by key.
	allocs map[string]Allocation
	// macs maps each held MAC (its 6 bytes as a string) to its key.
	macs map[string]string
}

// port is one PF of a pool.
type port struct {
	pf PF
	// since is when carrier last came back (meaningful while pf.Carrier).
	since time.Time
	// vfs are the PF's usable VFs, sorted by index.
	vfs []VF
	// held[i] is the key of the allocation holding vfs[i] ("" when free).
	held []string
	// used counts the non-empty entries of held.
	used int
}

// NewPool checks spec and returns the bond's pool with every VF free.
func NewPool(spec PoolSpec) (*Pool, error) {
	if spec.Bond == "" {
		return nil, errors.New("new pool: empty bond name")
	}
	if !spec.Policy.Valid() {
		return nil, fmt.Errorf("new pool %s: unknown policy %q (want %s or %s)", spec.Bond, spec.Policy, ActiveFirst, Balance)
	}
	if spec.FailbackAfter < 0 {
		return nil, fmt.Errorf("new pool %s: negative failback delay %s", spec.Bond, spec.FailbackAfter)
	}
	p := &Pool{
		bond:     spec.Bond,
		policy:   spec.Policy,
		failback: spec.FailbackAfter,
		libvirt:  spec.Libvirt,
		active:   spec.Active,
		allocs:   map[string]Allocation{},
		macs:     map[string]string{},
	}
	for i, pf := range spec.PFs {
		if pf.Name == "" {
			return nil, fmt.Errorf("new pool %s: PF %d has no name", spec.Bond, i)
		}
		if pf.Bond != "" && pf.Bond != spec.Bond {
			return nil, fmt.Errorf("new pool %s: %s (%s) is a port of %s", spec.Bond, pf.Name, pf.PCI, pf.Bond)
		}
		vfs := slices.Clone(spec.VFs[i])
		slices.SortFunc(vfs, func(a, b VF) int { return a.Index - b.Index })
		for j, vf := range vfs {
			if vf.PF != pf.Name {
				return nil, fmt.Errorf("new pool %s: %s listed under %s", spec.Bond, vf.ID(), pf.Name)
			}
			if vf.Index < 0 || j > 0 && vfs[j-1].Index == vf.Index {
				return nil, fmt.Errorf("new pool %s: %s: bad or repeated index", spec.Bond, vf.ID())
			}
		}
		pf.Bond = spec.Bond
		p.ports[i] = port{pf: pf, vfs: vfs, held: make([]string, len(vfs))}
		if pf.Carrier {
			p.ports[i].since = spec.At
		}
	}
	if p.ports[0].pf.Name == p.ports[1].pf.Name {
		return nil, fmt.Errorf("new pool %s: both ports are %s", spec.Bond, p.ports[0].pf.Name)
	}
	if spec.Active != "" && p.portOf(spec.Active) < 0 {
		return nil, fmt.Errorf("new pool %s: active port %s is not %s or %s: %w",
			spec.Bond, spec.Active, p.ports[0].pf.Name, p.ports[1].pf.Name, ErrNotManaged)
	}
	return p, nil
}

// Bond is the name of the pool's bond.
func (p *Pool) Bond() string { return p.bond }

// PortStatus is one PF of a bond as the pool sees it.
type PortStatus struct {
	// PF is the PF's netdev name.
	PF string
	// Carrier is its link state as the bond watcher last reported it.
	Carrier bool
	// CarrierSince is when carrier last came back (zero when unknown).
	CarrierSince time.Time
	// Used and Total count the PF's held and usable VFs.
	Used, Total int
}

// BondStatus is what a pool knows about its bond.
type BondStatus struct {
	// Bond is the bond's name.
	Bond string
	// Policy is the pool's placement policy.
	Policy Policy
	// FailbackAfter is the failback delay (0: never).
	FailbackAfter time.Duration
	// Active is the bond's active port ("" when none).
	Active string
	// Ports are the two PFs in configured order.
	Ports [2]PortStatus
}

// port returns the status of the named PF.
func (b BondStatus) port(pf string) (PortStatus, bool) {
	for _, ps := range b.Ports {
		if ps.PF == pf {
			return ps, true
		}
	}
	return PortStatus{}, false
}

// String renders the status on one line:
// "bond0 active-first active pf0: pf0 up 2/7, pf1 down 0/7".
func (b BondStatus) String() string {
	var s strings.Builder
	active := b.Active
	if active == "" {
		active = "(none)"
	}
	fmt.Fprintf(&s, "%s %s active %s:", b.Bond, b.Policy, active)
	for i, ps := range b.Ports {
		if i > 0 {
			s.WriteString(",")
		}
		link := "down"
		if ps.Carrier {
			link = "up"
		}
		fmt.Fprintf(&s, " %s %s %d/%d", ps.PF, link, ps.Used, ps.Total)
	}
	return s.String()
}

// Status returns the pool's bond status.
func (p *Pool) Status() BondStatus {
	st := BondStatus{Bond: p.bond, Policy: p.policy, FailbackAfter: p.failback, Active: p.active}
	for i := range p.ports {
		pt := &p.ports[i]
		st.Ports[i] = PortStatus{PF: pt.pf.Name, Carrier: pt.pf.Carrier, CarrierSince: pt.since, Used: pt.used, Total: len(pt.vfs)}
	}
	return st
}

// PFs returns the pool's two PFs, their Carrier as last reported.
func (p *Pool) PFs() [2]PF { return [2]PF{p.ports[0].pf, p.ports[1].pf} }

// VF returns the usable VF ref names, if the pool has it.
func (p *Pool) VF(ref VFRef) (VF, bool) {
	pi := p.portOf(ref.PF)
	if pi < 0 {
		return VF{}, false
	}
	si := p.ports[pi].slot(ref.Index)
	if si < 0 {
		return VF{}, false
	}
	return p.ports[pi].vfs[si], true
}

// VFByPCI returns the usable VF at the PCI address (canonical form), if the
// pool has it.
func (p *Pool) VFByPCI(pci string) (VF, bool) {
	pi, si := p.slotOfPCI(pci)
	if pi < 0 {
		return VF{}, false
	}
	return p.ports[pi].vfs[si], true
}

// slotOfPCI returns the port and slot of the VF at pci, or -1, -1.
func (p *Pool) slotOfPCI(pci string) (int, int) {
	for pi := range p.ports {
		for si, vf := range p.ports[pi].vfs {
			if vf.PCI == pci && pci != "" {
				return pi, si
			}
		}
	}
	return -1, -1
}

// portsText names both PFs for errors: "pf0 0000:01:00.0, pf1 0000:02:00.0".
func (p *Pool) portsText() string {
	return fmt.Sprintf("%s %s, %s %s", p.ports[0].pf.Name, p.ports[0].pf.PCI, p.ports[1].pf.Name, p.ports[1].pf.PCI)
}

// Allocations returns the pool's allocations sorted by key.
func (p *Pool) Allocations() []Allocation {
	out := make([]Allocation, 0, len(p.allocs))
	for _, a := range p.allocs {
		out = append(out, a.clone())
	}
	slices.SortFunc(out, func(a, b Allocation) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// Allocation returns the allocation with the given key.
func (p *Pool) Allocation(key string) (Allocation, bool) {
	a, ok := p.allocs[key]
	return a.clone(), ok
}

// Adopt takes over a persisted allocation (at daemon start): it holds a's
// VF again. Unlike Allocate it accepts a VF on a PF without carrier (the
// VM is there already; a Reconcile plan moves it).
func (p *Pool) Adopt(a Allocation) error {
	key := a.Key()
	if a.Bond != p.bond {
		return fmt.Errorf("adopt %s of %s into %s: %w", key, a.Bond, p.bond, ErrNotManaged)
	}
	if err := checkMAC(a.MAC); err != nil {
		return fmt.Errorf("adopt %s: %w", key, err)
	}
	pi := p.portOf(a.VF.PF)
	if pi < 0 {
		return fmt.Errorf("adopt %s: %s is not a port of %s: %w", key, a.VF, p.bond, ErrNotManaged)
	}
	pt := &p.ports[pi]
	si := pt.slot(a.VF.Index)
	if si < 0 {
		return fmt.Errorf("adopt %s: %s is not a usable VF of %s: %w", key, a.VF, p.bond, ErrNotManaged)
	}
	if _, dup := p.allocs[key]; dup {
		return fmt.Errorf("adopt %s on %s: %w", key, pt.vfs[si].ID(), ErrAllocated)
	}
	if holder := pt.held[si]; holder != "" {
		return fmt.Errorf("adopt %s: %s is held by %s: %w", key, pt.vfs[si].ID(), holder, ErrVFHeld)
	}
	if other, dup := p.macs[string(a.MAC)]; dup {
		return fmt.Errorf("adopt %s on %s: MAC %s is held by %s: %w", key, pt.vfs[si].ID(), a.MAC, other, ErrDuplicateMAC)
	}
	if a.Home == "" || p.portOf(a.Home) < 0 {
		a.Home = a.VF.PF
	}
	p.hold(pi, si, a.clone())
	return nil
}

// Clone returns an independent copy of the pool.
func (p *Pool) Clone() *Pool {
	c := *p
	for i := range c.ports {
		c.ports[i].held = slices.Clone(p.ports[i].held)
		// vfs never change after NewPool: shared.
	}
	c.allocs = make(map[string]Allocation, len(p.allocs))
	for k, a := range p.allocs {
		c.allocs[k] = a // MAC and Addrs are never changed in place: shared.
	}
	c.macs = make(map[string]string, len(p.macs))
	for k, v := range p.macs {
		c.macs[k] = v
	}
	return &c
}

// String renders the pool as comparable text, one line for the bond and
// one per PF listing the held VFs:
//
//	bond0 active-first active pf0: pf0 up 2/4, pf1 up 0/4
//	  pf0: vf0 vm1/net0, vf1 vm2/net0
//	  pf1: -
func (p *Pool) String() string {
	var s strings.Builder
	s.WriteString(p.Status().String())
	s.WriteString("\n")
	for i := range p.ports {
		pt := &p.ports[i]
		fmt.Fprintf(&s, "  %s:", pt.pf.Name)
		n := 0
		for si, key := range pt.held {
			if key == "" {
				continue
			}
			if n > 0 {
				s.WriteString(",")
			}
			fmt.Fprintf(&s, " vf%d %s", pt.vfs[si].Index, key)
			n++
		}
		if n == 0 {
			s.WriteString(" -")
		}
		s.WriteString("\n")
	}
	return s.String()
}

// portOf returns the index of the named PF in p.ports, or -1.
func (p *Pool) portOf(pf string) int {
	for i := range p.ports {
		if p.ports[i].pf.Name == pf {
			return i
		}
	}
	return -1
}

// hold records a as holding slot si of port pi; a.VF must name it.
func (p *Pool) hold(pi, si int, a Allocation) {
	pt := &p.ports[pi]
	pt.held[si] = a.Key()
	pt.used++
	p.allocs[a.Key()] = a
	p.macs[string(a.MAC)] = a.Key()
}

// unhold frees the VF a holds and forgets a.
func (p *Pool) unhold(a Allocation) {
	if pi := p.portOf(a.VF.PF); pi >= 0 {
		pt := &p.ports[pi]
		if si := pt.slot(a.VF.Index); si >= 0 && pt.held[si] == a.Key() {
			pt.held[si] = ""
			pt.used--
		}
	}
	delete(p.allocs, a.Key())
	delete(p.macs, string(a.MAC))
}

// Free lists the VFs of pf that no allocation holds, by index (nil for a
// PF that is not the pool's).
func (p *Pool) Free(pf string) []VF {
	pi := p.portOf(pf)
	if pi < 0 {
		return nil
	}
	var out []VF
	for i, v := range p.ports[pi].vfs {
		if p.ports[pi].held[i] == "" {
			out = append(out, v)
		}
	}
	return out
}

// Active is the bond's active port ("" when it has none).
func (p *Pool) Active() string { return p.active }

// usage renders both PFs' use for errors: "pf0 7/7 used; pf1 3/7 used, no carrier".
func (p *Pool) usage() string {
	var parts []string
	for i := range p.ports {
		pt := &p.ports[i]
		u := fmt.Sprintf("%s %d/%d used", pt.pf.Name, pt.used, len(pt.vfs))
		if !pt.pf.Carrier {
			u += ", no carrier"
		}
		parts = append(parts, u)
	}
	return strings.Join(parts, "; ")
}

// slot returns the position of VF index in pt.vfs, or -1.
func (pt *port) slot(index int) int {
	if index >= 0 && index < len(pt.vfs) && pt.vfs[index].Index == index {
		return index // the usual case: VFs 0..n-1
	}
	si, ok := slices.BinarySearchFunc(pt.vfs, index, func(v VF, i int) int { return v.Index - i })
	if !ok {
		return -1
	}
	return si
}

// firstFree returns the position of the lowest-numbered free VF at or
// after from, or -1.
func (pt *port) firstFree(from int) int {
	for si := from; si < len(pt.held); si++ {
		if pt.held[si] == "" {
			return si
		}
	}
	return -1
}

// free is the number of free VFs.
func (pt *port) free() int { return len(pt.vfs) - pt.used }

// ref names VF slot si.
func (pt *port) ref(si int) VFRef { return VFRef{PF: pt.pf.Name, Index: pt.vfs[si].Index} }

// clone returns a copy of a that shares nothing with it.
func (a Allocation) clone() Allocation {
	a.MAC = slices.Clone(a.MAC)
	a.Addrs = slices.Clone(a.Addrs)
	return a
}
