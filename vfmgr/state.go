package vfmgr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// State is the VF manager's whole view: every managed bond's pool with its
// allocations. It is what the failover planner decides on.
//
// A State is a value whose copies share storage: Allocate, Release and
// Adopt change it in place (and every copy with it), Plan only reads it,
// and Apply returns a new State leaving its receiver unchanged. Clone
// makes an independent copy. The zero State manages no bond.
type State struct {
	// pools holds each managed bond's pool, by bond name.
	pools map[string]*Pool
}

// NewState returns a State of the given pools. Bond names must be
// distinct, no PF may serve two bonds and no MAC may be held twice.
func NewState(pools ...*Pool) (State, error) {
	s := State{pools: make(map[string]*Pool, len(pools))}
	pfs := map[string]string{}
	macs := map[string]string{}
	for _, p := range pools {
		if _, dup := s.pools[p.bond]; dup {
			return State{}, fmt.Errorf("new state: bond %s listed twice", p.bond)
		}
		for _, pf := range p.PFs() {
			if other, dup := pfs[pf.Name]; dup {
				return State{}, fmt.Errorf("new state: %s (%s) is a port of both %s and %s", pf.Name, pf.PCI, other, p.bond)
			}
			pfs[pf.Name] = p.bond
		}
		for mac, key := range p.macs {
			if other, dup := macs[mac]; dup {
				return State{}, fmt.Errorf("new state: MAC of %s is held by %s too: %w", key, other, ErrDuplicateMAC)
			}
			macs[mac] = key
		}
		s.pools[p.bond] = p
	}
	return s, nil
}

// Pool returns the pool of the named bond. The pool is the State's own:
// changing it changes the State.
func (s State) Pool(bond string) (*Pool, bool) {
	p, ok := s.pools[bond]
	return p, ok
}

// Bonds returns the status of every bond, sorted by name.
func (s State) Bonds() []BondStatus {
	out := make([]BondStatus, 0, len(s.pools))
	for _, name := range s.bondNames() {
		out = append(out, s.pools[name].Status())
	}
	return out
}

// Allocations returns every allocation of every bond, sorted by key.
func (s State) Allocations() []Allocation {
	var out []Allocation
	for _, name := range s.bondNames() {
		out = append(out, s.pools[name].Allocations()...)
	}
	slices.SortFunc(out, func(a, b Allocation) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// Allocation returns the allocation with the given key.
func (s State) Allocation(key string) (Allocation, bool) {
	for _, p := range s.pools {
		if a, ok := p.Allocation(key); ok {
			return a, true
		}
	}
	return Allocation{}, false
}

// Allocate gives the VM interface a VF of req.Bond's pool (see
// Pool.Allocate); req.Bond may be empty when one bond is managed, or when
// req.PCI names the VF (its bond is then the one it belongs to). A MAC or
// key already held in another bond is refused too.
func (s State) Allocate(req Request) (Allocation, error) {
	key := req.Key()
	bond := req.Bond
	switch {
	case bond == "" && req.PCI != "":
		// The VF names its bond.
		if err := req.Validate(); err != nil {
			return Allocation{}, fmt.Errorf("allocate VF for %s: %w", key, err)
		}
		for _, name := range s.bondNames() {
			if _, ok := s.pools[name].VFByPCI(req.PCI); ok {
				bond = name
			}
		}
		if bond == "" {
			return Allocation{}, fmt.Errorf("adopt VF %s for %s: not a VF vflag uses on any managed bond (%s): %w",
				req.PCI, key, s.portsText(), ErrNotManaged)
		}
	case bond == "" && len(s.pools) == 1:
		for name := range s.pools {
			bond = name
		}
	}
	p, ok := s.pools[bond]
	if !ok {
		return Allocation{}, fmt.Errorf("allocate VF for %s: bond %q: %w", key, bond, ErrNotManaged)
	}
	for name, other := range s.pools {
		if name == bond {
			continue
		}
		if a, held := other.allocs[key]; held {
			return Allocation{}, fmt.Errorf("allocate VF for %s on %s: holds %s of %s: %w", key, bond, a.VF, name, ErrAllocated)
		}
		if holder, held := other.macs[string(req.MAC)]; held && len(req.MAC) > 0 {
			return Allocation{}, fmt.Errorf("allocate VF for %s on %s: MAC %s is held by %s on %s: %w", key, bond, req.MAC, holder, name, ErrDuplicateMAC)
		}
	}
	req.Bond = bond
	return p.Allocate(req)
}

// Release frees the VF the key holds, in whichever bond.
func (s State) Release(key string) (Allocation, error) {
	for _, p := range s.pools {
		if _, ok := p.allocs[key]; ok {
			return p.Release(key)
		}
	}
	return Allocation{}, fmt.Errorf("release %s: %w", key, ErrNotManaged)
}

// Adopt takes over a persisted allocation (see Pool.Adopt), refusing a
// MAC or key that another bond holds.
func (s State) Adopt(a Allocation) error {
	p, ok := s.pools[a.Bond]
	if !ok {
		return fmt.Errorf("adopt %s: bond %q: %w", a.Key(), a.Bond, ErrNotManaged)
	}
	for name, other := range s.pools {
		if name == a.Bond {
			continue
		}
		if _, held := other.allocs[a.Key()]; held {
			return fmt.Errorf("adopt %s: held on %s too: %w", a.Key(), name, ErrAllocated)
		}
		if holder, held := other.macs[string(a.MAC)]; held {
			return fmt.Errorf("adopt %s: MAC %s is held by %s on %s: %w", a.Key(), a.MAC, holder, name, ErrDuplicateMAC)
		}
	}
	return p.Adopt(a)
}

// Clone returns an independent copy of s.
func (s State) Clone() State {
	c := State{pools: make(map[string]*Pool, len(s.pools))}
	for name, p := range s.pools {
		c.pools[name] = p.Clone()
	}
	return c
}

// Check verifies the State's invariants and returns every violation: each
// held VF is held by exactly one allocation that names it, each allocation
// holds a VF of its bond, no MAC is held twice, the counts agree. A State
// built and changed only through this package's functions always passes;
// the daemon may call it after loading persisted allocations.
func (s State) Check() error {
	var errs []error
	macs := map[string]string{}
	for _, name := range s.bondNames() {
		p := s.pools[name]
		held := 0
		for pi := range p.ports {
			pt := &p.ports[pi]
			used := 0
			for si, key := range pt.held {
				if key == "" {
					continue
				}
				used++
				a, ok := p.allocs[key]
				if !ok {
					errs = append(errs, fmt.Errorf("%s: %s is held by unknown %s", name, pt.vfs[si].ID(), key))
				} else if a.VF != pt.ref(si) {
					errs = append(errs, fmt.Errorf("%s: %s is held by %s, which names %s", name, pt.vfs[si].ID(), key, a.VF))
				}
			}
			if used != pt.used {
				errs = append(errs, fmt.Errorf("%s: %s counts %d used VFs, holds %d", name, pt.pf.Name, pt.used, used))
			}
			held += used
		}
		if held != len(p.allocs) {
			errs = append(errs, fmt.Errorf("%s: %d VFs held for %d allocations", name, held, len(p.allocs)))
		}
		for key, a := range p.allocs {
			if a.Key() != key || a.Bond != name {
				errs = append(errs, fmt.Errorf("%s: allocation %s filed as %s of %s", name, a.Key(), key, a.Bond))
			}
			if other, dup := macs[string(a.MAC)]; dup {
				errs = append(errs, fmt.Errorf("%s: MAC %s held by %s and %s: %w", name, a.MAC, other, key, ErrDuplicateMAC))
			}
			macs[string(a.MAC)] = key
			if p.macs[string(a.MAC)] != key {
				errs = append(errs, fmt.Errorf("%s: MAC index misses %s of %s", name, a.MAC, key))
			}
		}
		if len(p.macs) != len(p.allocs) {
			errs = append(errs, fmt.Errorf("%s: %d MACs indexed for %d allocations", name, len(p.macs), len(p.allocs)))
		}
	}
	return errors.Join(errs...)
}

// String renders every pool (Pool.String), sorted by bond.
func (s State) String() string {
	var b strings.Builder
	for _, name := range s.bondNames() {
		b.WriteString(s.pools[name].String())
	}
	return b.String()
}

// portsText names every managed bond's PFs for errors.
func (s State) portsText() string {
	var parts []string
	for _, name := range s.bondNames() {
		parts = append(parts, name+": "+s.pools[name].portsText())
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// bondNames returns the managed bonds' names, sorted.
func (s State) bondNames() []string {
	names := make([]string, 0, len(s.pools))
	for name := range s.pools {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
