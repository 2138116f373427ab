package vfmgr

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// More sentinel errors of the allocator.
var (
	// ErrInvalid: a request field is out of range; the message names it.
	ErrInvalid = errors.New("invalid request")
	// ErrAllocated: the VM interface already holds a VF with other settings.
	ErrAllocated = errors.New("interface already holds a VF")
	// ErrVFHeld: the VF is held by another allocation.
	ErrVFHeld = errors.New("VF already held")
)

// Limits of a VF's port VLAN, as rtnetlink's IFLA_VF_VLAN takes them
// (net/core/rtnetlink.c do_setvfinfo: vlan > 4095 || qos > 7 is EINVAL;
// 4095 is reserved by IEEE 802.1Q).
const (
	// MaxVLAN is the highest port VLAN a VM may have.
	MaxVLAN = 4094
	// MaxQoS is the highest 802.1p priority of the port VLAN.
	MaxQoS = 7
)

// Request asks for a VF for one VM interface.
type Request struct {
	// VM names the VM (libvirt domain name or UUID).
	VM string
	// Iface tells the VM's interfaces apart; empty means the MAC as text.
	Iface string
	// Bond is the bond to take the VF from; may be empty when vflag
	// manages a single bond (State.Allocate).
	Bond string
	// MAC is the VM's unicast MAC (EUI-48, not all zeros).
	MAC net.HardwareAddr
	// VLAN (0..4094, 0 untagged) and QoS (0..7) are the port VLAN.
	VLAN, QoS int
	// Trust is the VF trust setting.
	Trust bool
	// Addrs are the VM's known IP addresses, for announcements.
	Addrs []netip.Addr
	// At is the time of the request; it becomes Allocation.Since.
	At time.Time
	// PCI, when set, asks for exactly the VF at this PCI address (canonical
	// form, "0000:01:10.2") instead of one the policy chooses: libvirt or
	// the domain XML picked it, and vflag adopts it.
	PCI string
	// Mode and DomainUUID are recorded in the allocation.
	Mode Mode
	// DomainUUID is the libvirt domain's UUID, if any.
	DomainUUID string
}

// Key is the key the allocation will have: VM and interface.
func (r Request) Key() string { return r.VM + "/" + r.iface() }

// iface is Iface or the MAC as text.
func (r Request) iface() string {
	if r.Iface == "" {
		return r.MAC.String()
	}
	return r.Iface
}

// Validate checks every field; the error joins one error per bad field,
// each naming the field and wrapping ErrInvalid.
func (r Request) Validate() error {
	var errs []error
	switch {
	case r.VM == "":
		errs = append(errs, fmt.Errorf("vm: empty: %w", ErrInvalid))
	case strings.Contains(r.VM, "/"):
		// The key is VM/Iface; libvirt domain names have no '/' either.
		errs = append(errs, fmt.Errorf("vm %q: contains '/': %w", r.VM, ErrInvalid))
	}
	if err := checkMAC(r.MAC); err != nil {
		errs = append(errs, err)
	}
	if r.VLAN < 0 || r.VLAN > MaxVLAN {
		errs = append(errs, fmt.Errorf("vlan %d out of range 0..%d: %w", r.VLAN, MaxVLAN, ErrInvalid))
	}
	if r.QoS < 0 || r.QoS > MaxQoS {
		errs = append(errs, fmt.Errorf("qos %d out of range 0..%d: %w", r.QoS, MaxQoS, ErrInvalid))
	}
	if r.PCI != "" {
		if c, err := CanonicalPCI(r.PCI); err != nil || c != r.PCI {
			errs = append(errs, fmt.Errorf("pci %q: not a PCI address in canonical form (0000:01:10.2): %w", r.PCI, ErrInvalid))
		}
	}
	if !r.Mode.Valid() {
		errs = append(errs, fmt.Errorf("mode %q: not %s, %s or %s: %w", r.Mode, ModeAdopt, ModeFailover, ModeHotswap, ErrInvalid))
	}
	return errors.Join(errs...)
}

// CanonicalPCI returns a PCI address ("0000:01:10.2", or "01:10.2" for
// domain 0) in the kernel's canonical form: lower-case hex, four-digit
// domain, function 0..7, slot 0..31.
func CanonicalPCI(s string) (string, error) {
	var dom, bus, slot, fn uint64
	parts := strings.Split(s, ":")
	if len(parts) == 2 {
		parts = append([]string{"0000"}, parts...)
	}
	if len(parts) != 3 {
		return "", fmt.Errorf("pci address %q: want DDDD:BB:SS.F", s)
	}
	sf := strings.Split(parts[2], ".")
	if len(sf) != 2 {
		return "", fmt.Errorf("pci address %q: want DDDD:BB:SS.F", s)
	}
	fields := []struct {
		text  string
		width int
		max   uint64
		v     *uint64
	}{{parts[0], 4, 0xffff, &dom}, {parts[1], 2, 0xff, &bus}, {sf[0], 2, 0x1f, &slot}, {sf[1], 1, 7, &fn}}
	for _, f := range fields {
		if f.text == "" || len(f.text) > f.width {
			return "", fmt.Errorf("pci address %q: want DDDD:BB:SS.F", s)
		}
		v, err := strconv.ParseUint(f.text, 16, 16)
		if err != nil || v > f.max {
			return "", fmt.Errorf("pci address %q: %q out of range", s, f.text)
		}
		*f.v = v
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", dom, bus, slot, fn), nil
}

// checkMAC accepts a unicast EUI-48 address that is not all zeros.
func checkMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return fmt.Errorf("mac %q: not an EUI-48 address: %w", mac.String(), ErrInvalid)
	case bytes.Equal(mac, make(net.HardwareAddr, 6)):
		return fmt.Errorf("mac %s: all zeros: %w", mac, ErrInvalid)
	case mac[0]&1 != 0:
		return fmt.Errorf("mac %s: multicast (I/G bit set): %w", mac, ErrInvalid)
	}
	return nil
}

// matches reports whether a is what r asks for (repeated requests are
// answered with the existing allocation). A request without a mode matches
// any: only the hook sets one, and it always does.
func (a Allocation) matches(r Request) bool {
	return bytes.Equal(a.MAC, r.MAC) && a.VLAN == r.VLAN && a.QoS == r.QoS && a.Trust == r.Trust &&
		(r.Mode == ModeDefault || a.Mode == r.Mode)
}

// Allocate gives the VM interface a free VF according to the pool's
// policy and returns the allocation:
//
//   - active-first: the lowest free VF of the active PF; when the active PF
//     has none (or no carrier), the backup PF's ("spill").
//   - balance: the lowest free VF of the PF with carrier that has fewer
//     VMs; ties go to the active PF.
//
// Only PFs with carrier are used. With req.PCI the VM gets exactly that VF
// ("adopt": libvirt or the domain XML chose it), whichever PF it is on and
// whatever that PF's carrier. A repeated request for a key that holds a VF
// with the same MAC, VLAN, QoS, Trust and mode (and PCI address, when
// asked for) returns that allocation. Errors wrap ErrInvalid, ErrAllocated,
// ErrDuplicateMAC (another key holds the MAC), ErrVFHeld (another key
// holds the VF at req.PCI), ErrNoFreeVF (naming both PFs' use) or
// ErrNotManaged (the request names another bond, or req.PCI is not a
// usable VF of this one).
func (p *Pool) Allocate(req Request) (Allocation, error) {
	key := req.Key()
	if err := req.Validate(); err != nil {
		return Allocation{}, fmt.Errorf("allocate VF for %s on %s: %w", key, p.bond, err)
	}
	if req.Bond != "" && req.Bond != p.bond {
		return Allocation{}, fmt.Errorf("allocate VF for %s: bond %s is not %s: %w", key, req.Bond, p.bond, ErrNotManaged)
	}
	if a, ok := p.allocs[key]; ok {
		vf, _ := p.VF(a.VF)
		if a.matches(req) && (req.PCI == "" || vf.PCI == req.PCI) {
			return a.clone(), nil
		}
		return Allocation{}, fmt.Errorf("allocate VF for %s on %s: holds %s with MAC %s vlan %d qos %d trust %t (VF %s, mode %q): %w",
			key, p.bond, a.VF, a.MAC, a.VLAN, a.QoS, a.Trust, vf.PCI, a.Mode, ErrAllocated)
	}
	if other, ok := p.macs[string(req.MAC)]; ok {
		return Allocation{}, fmt.Errorf("allocate VF for %s on %s: MAC %s is held by %s: %w", key, p.bond, req.MAC, other, ErrDuplicateMAC)
	}
	var pi, si int
	if req.PCI != "" {
		pi, si = p.slotOfPCI(req.PCI)
		if pi < 0 {
			return Allocation{}, fmt.Errorf("adopt VF %s for %s: not a VF vflag uses on %s (%s): %w",
				req.PCI, key, p.bond, p.portsText(), ErrNotManaged)
		}
		if holder := p.ports[pi].held[si]; holder != "" {
			return Allocation{}, fmt.Errorf("adopt VF %s for %s: %s is held by %s: %w",
				req.PCI, key, p.ports[pi].vfs[si].ID(), holder, ErrVFHeld)
		}
	} else {
		pi = p.choose()
		if pi < 0 {
			return Allocation{}, fmt.Errorf("allocate VF for %s on %s (%s): %w", key, p.bond, p.usage(), ErrNoFreeVF)
		}
		si = p.ports[pi].firstFree(0)
	}
	pt := &p.ports[pi]
	a := Allocation{
		VM:         req.VM,
		Iface:      req.iface(),
		MAC:        slices.Clone(req.MAC),
		VLAN:       req.VLAN,
		QoS:        req.QoS,
		Trust:      req.Trust,
		Bond:       p.bond,
		VF:         pt.ref(si),
		Home:       pt.pf.Name,
		Addrs:      slices.Clone(req.Addrs),
		Since:      req.At,
		Mode:       req.Mode,
		DomainUUID: req.DomainUUID,
	}
	p.hold(pi, si, a)
	return a.clone(), nil
}

// choose returns the port a new VM goes to under the pool's policy, or -1.
func (p *Pool) choose() int {
	usable := func(i int) bool { return p.ports[i].pf.Carrier && p.ports[i].free() > 0 }
	// first is the port ties go to: the active one, else the first.
	first := 0
	if p.active == p.ports[1].pf.Name {
		first = 1
	}
	second := 1 - first
	switch {
	case !usable(first) && !usable(second):
		return -1
	case !usable(first):
		return second
	case !usable(second):
		return first
	case p.policy == Balance && p.ports[second].used < p.ports[first].used:
		return second
	default:
		return first
	}
}

// Release frees the VF the key holds and returns the allocation it had.
// An unknown key is an error wrapping ErrNotManaged.
func (p *Pool) Release(key string) (Allocation, error) {
	a, ok := p.allocs[key]
	if !ok {
		return Allocation{}, fmt.Errorf("release %s on %s: %w", key, p.bond, ErrNotManaged)
	}
	p.unhold(a)
	return a.clone(), nil
}
