package hooks

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/vfmgr"
)

// NetworkPrefix starts the name of every libvirt network vflag maintains:
// vflag-<bond> is the VF pool of <bond>.
const NetworkPrefix = "vflag-"

// Kind is what the domain XML says about an interface's VF.
type Kind string

const (
	// KindPool is <interface type='network'>: libvirt picks a VF from the
	// network's pool when the VM starts (before that, no VF is known).
	KindPool Kind = "pool"
	// KindVF is <interface type='hostdev'> with the VF's PCI address: a
	// hand-written or Nova-written hostdev, or a pool interface once libvirt
	// picked its VF (the XML of the start, started and reconnect hooks).
	KindVF Kind = "vf"
)

// Marker says how an interface was recognised as vflag's.
type Marker string

const (
	// MarkNone: not vflag's. The hook leaves it alone.
	MarkNone Marker = ""
	// MarkNetwork: its network's name starts with NetworkPrefix.
	MarkNetwork Marker = "network"
	// MarkMetadata: the domain's vflag metadata names its MAC.
	MarkMetadata Marker = "metadata"
	// MarkAddress: a hostdev whose VF's PF is a port of a bond on this
	// host; vflagd has the last word (it answers "not managed" for a bond
	// it does not manage).
	MarkAddress Marker = "address"
)

// Interface is one <interface> of a domain with a VF (type network or
// hostdev), as the hook sees it.
type Interface struct {
	// Index is its position among the domain's <interface> elements,
	// from 0.
	Index int
	// Kind says whether the VF is known (KindVF) or still to be picked by
	// libvirt (KindPool).
	Kind Kind
	// Marker says whether and why it is vflag's.
	Marker Marker
	// MAC is its MAC, lower case ("" when the XML has none).
	MAC string
	// Network is the libvirt network (KindPool).
	Network string
	// PCI is the VF's address in canonical form (KindVF).
	PCI string
	// VLAN is its port VLAN (0: untagged).
	VLAN int
	// Bond is the bond the VF must come from ("": the VF's own, or
	// vflagd's only bond).
	Bond string
	// Mode is what vflagd is told to do on a port loss ("": vflagd decides).
	Mode vfmgr.Mode
	// Standby is the alias of the virtio-net standby of a failover pair.
	Standby string
}

// String names the interface for messages: "interface 2 (MAC
// 52:54:00:6b:3c:01, VF 0000:01:10.2)".
func (i Interface) String() string {
	var what string
	switch i.Kind {
	case KindPool:
		what = "network " + i.Network
	default:
		what = "VF " + i.PCI
		if i.PCI == "" {
			what = "hostdev"
		}
	}
	mac := i.MAC
	if mac == "" {
		mac = "none"
	}
	return fmt.Sprintf("interface %d (MAC %s, %s)", i.Index, mac, what)
}

// Domain is what the hook reads from a domain XML.
type Domain struct {
	// Name and UUID are the domain's.
	Name, UUID string
	// Interfaces are its interfaces of type network and hostdev, in
	// document order.
	Interfaces []Interface
	// Raw is the XML as given.
	Raw []byte
	// metadata says the domain has vflag metadata, valid or not.
	metadata bool
	// problems are what Check reports.
	problems []error
}

// PCILookup tells which bond the PF of a VF is a port of.
type PCILookup interface {
	// BondOf returns the bond whose port is the PF of the VF at pci
	// (canonical form), or "" when pci is no VF on this host or its PF is
	// no bond port.
	BondOf(pci string) (string, error)
}

// Options tune how Parse recognises vflag's interfaces.
type Options struct {
	// PCI recognises hostdev interfaces by their VF's PF; nil skips that
	// (the addresses of an incoming migration are the source host's).
	PCI PCILookup
	// Mode is the mode of interfaces that neither vflag metadata nor a
	// <teaming> pair gives one ("": vflagd decides).
	Mode vfmgr.Mode
}

// Parse reads a domain XML and recognises the interfaces that are vflag's
// (hooks/README.md says how). It fails only on XML that is not a domain;
// what is wrong with the interfaces Check reports.
func Parse(raw []byte, o Options) (*Domain, error) {
	var dx libvirtxml.Domain
	if err := dx.Unmarshal(string(raw)); err != nil {
		return nil, fmt.Errorf("domain XML on stdin: %w", err)
	}
	d := &Domain{Name: dx.Name, UUID: dx.UUID, Raw: raw}
	meta, err := parseMetadata(raw)
	if err != nil {
		d.problems = append(d.problems, err)
	}
	d.metadata = meta.present
	var ifs []libvirtxml.DomainInterface
	if dx.Devices != nil {
		ifs = dx.Devices.Interfaces
	}
	used := map[string]bool{}
	for i := range ifs {
		x := &ifs[i]
		if x.Source == nil || (x.Source.Network == nil && x.Source.Hostdev == nil) {
			continue
		}
		it, err := d.recognise(i, x, meta, o)
		if err != nil {
			d.problems = append(d.problems, fmt.Errorf("%s: %w", it, err))
		}
		if it.Marker == MarkMetadata {
			used[it.MAC] = true
		}
		d.Interfaces = append(d.Interfaces, it)
	}
	d.checkMACs(ifs)
	for _, m := range meta.order {
		if !used[m] {
			d.problems = append(d.problems, fmt.Errorf(
				"vflag metadata names MAC %s, but no <interface type='hostdev'> or <interface type='network'> has it", m))
		}
	}
	return d, nil
}

// recognise reads interface i and says whether it is vflag's.
func (d *Domain) recognise(i int, x *libvirtxml.DomainInterface, meta metadata, o Options) (Interface, error) {
	it := Interface{Index: i}
	if x.MAC != nil {
		it.MAC = strings.ToLower(x.MAC.Address)
	}
	if x.Teaming != nil && x.Teaming.Type == "persistent" {
		// The virtio-net standby of a failover pair: not vflag's.
		it.Kind = KindVF
		if x.Source.Network != nil {
			it.Kind, it.Network = KindPool, x.Source.Network.Network
		}
		return it, nil
	}
	var errs []error
	switch {
	case x.Source.Network != nil:
		it.Kind, it.Network = KindPool, x.Source.Network.Network
		if strings.HasPrefix(it.Network, NetworkPrefix) {
			it.Marker, it.Bond = MarkNetwork, strings.TrimPrefix(it.Network, NetworkPrefix)
		}
	default:
		it.Kind = KindVF
		pci, err := hostdevPCI(x.Source.Hostdev)
		it.PCI = pci
		switch {
		case err != nil:
			errs = append(errs, err)
		case o.PCI != nil:
			bond, err := o.PCI.BondOf(pci)
			if err != nil {
				return it, err
			}
			if bond != "" {
				it.Marker, it.Bond = MarkAddress, bond
			}
		}
	}
	m, marked := meta.byMAC[it.MAC]
	if marked && it.MAC != "" {
		it.Marker = MarkMetadata
		if m.bond != "" {
			it.Bond = m.bond
		}
	}
	if it.Marker == MarkNone {
		return it, nil
	}
	if len(errs) > 0 {
		return it, errors.Join(errs...)
	}
	if err := checkMAC(it.MAC); err != nil {
		return it, err
	}
	vlan, err := portVLAN(x.VLan)
	if err != nil {
		return it, err
	}
	it.VLAN = vlan
	it.Mode = o.Mode
	if x.Teaming != nil && x.Teaming.Type == "transient" {
		it.Mode, it.Standby = vfmgr.ModeFailover, x.Teaming.Persistent
	}
	if marked && m.mode != "" {
		it.Mode = m.mode
	}
	if it.Mode == vfmgr.ModeFailover && it.Standby == "" {
		return it, fmt.Errorf("mode failover needs <teaming type='transient' persistent='ALIAS'/> on the VF and a virtio-net standby with <alias name='ALIAS'/>, <teaming type='persistent'/> and the same MAC")
	}
	return it, nil
}

// hostdevPCI returns the canonical PCI address of a hostdev interface.
func hostdevPCI(h *libvirtxml.DomainInterfaceSourceHostdev) (string, error) {
	if h == nil || h.PCI == nil || h.PCI.Address == nil {
		return "", errors.New("<interface type='hostdev'> without <source><address type='pci' .../></source>: vflag handles PCI VFs only")
	}
	a := h.PCI.Address
	if a.Bus == nil || a.Slot == nil || a.Function == nil {
		return "", errors.New("<source><address type='pci'> needs bus, slot and function")
	}
	var dom uint
	if a.Domain != nil {
		dom = *a.Domain
	}
	if dom > 0xffff || *a.Bus > 0xff || *a.Slot > 0x1f || *a.Function > 7 {
		return "", fmt.Errorf("PCI address domain %#x bus %#x slot %#x function %#x is out of range", dom, *a.Bus, *a.Slot, *a.Function)
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", dom, *a.Bus, *a.Slot, *a.Function), nil
}

// checkMAC accepts a unicast EUI-48 MAC that is not all zeros.
func checkMAC(mac string) error {
	if mac == "" {
		return errors.New("no <mac address='...'/>: vflag configures the VF with the VM's MAC")
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("MAC %q is not an EUI-48 address", mac)
	}
	if hw[0]&1 != 0 || hw.String() == "00:00:00:00:00:00" {
		return fmt.Errorf("MAC %s is multicast or zero", mac)
	}
	return nil
}

// portVLAN reads <vlan>: one tag, the VF's port VLAN.
func portVLAN(v *libvirtxml.DomainInterfaceVLan) (int, error) {
	if v == nil || len(v.Tags) == 0 {
		return 0, nil
	}
	if len(v.Tags) > 1 || v.Trunk == "yes" {
		return 0, fmt.Errorf("<vlan trunk='yes'> or several tags: a VF has one port VLAN")
	}
	t := v.Tags[0]
	if t.NativeMode != "" {
		return 0, fmt.Errorf("<tag nativeMode=%q>: a VF has one port VLAN, tagged", t.NativeMode)
	}
	if t.ID > vfmgr.MaxVLAN {
		return 0, fmt.Errorf("VLAN %d out of range 0..%d", t.ID, vfmgr.MaxVLAN)
	}
	return int(t.ID), nil
}

// checkMACs finds MACs that vflag's interfaces share with other
// interfaces: only a failover pair may share one.
func (d *Domain) checkMACs(ifs []libvirtxml.DomainInterface) {
	type member struct {
		index   int
		teaming *libvirtxml.DomainInterfaceTeaming
		alias   string
	}
	byMAC := map[string][]member{}
	var order []string
	for i := range ifs {
		if ifs[i].MAC == nil || ifs[i].MAC.Address == "" {
			continue
		}
		mac := strings.ToLower(ifs[i].MAC.Address)
		if byMAC[mac] == nil {
			order = append(order, mac)
		}
		m := member{index: i, teaming: ifs[i].Teaming}
		if ifs[i].Alias != nil {
			m.alias = ifs[i].Alias.Name
		}
		byMAC[mac] = append(byMAC[mac], m)
	}
	vflags := map[int]Interface{}
	for _, it := range d.Interfaces {
		if it.Marker != MarkNone {
			vflags[it.Index] = it
		}
	}
	for _, mac := range order {
		ms := byMAC[mac]
		var mine []int
		for _, m := range ms {
			if _, ok := vflags[m.index]; ok {
				mine = append(mine, m.index)
			}
		}
		if len(ms) < 2 || len(mine) == 0 {
			continue
		}
		var idx []string
		for _, m := range ms {
			idx = append(idx, fmt.Sprint(m.index))
		}
		if len(ms) == 2 && len(mine) == 1 {
			vf := vflags[mine[0]]
			other := ms[0]
			if other.index == vf.Index {
				other = ms[1]
			}
			if vf.Standby != "" {
				continue // a failover pair; the loop below checks it
			}
		}
		d.problems = append(d.problems, fmt.Errorf(
			"interfaces %s have the same MAC %s: vflag configures each VF with its VM's MAC, so every VF interface needs its own; only a <teaming> failover pair (VF transient, virtio-net persistent) may share one",
			strings.Join(idx, " and "), mac))
	}
	for _, it := range d.Interfaces {
		if it.Marker == MarkNone || it.Standby == "" {
			continue
		}
		found := false
		for _, m := range byMAC[it.MAC] {
			found = found || (m.index != it.Index && m.alias == it.Standby && m.teaming != nil && m.teaming.Type == "persistent")
		}
		if !found {
			d.problems = append(d.problems, fmt.Errorf(
				"%s: <teaming type='transient' persistent='%s'/> names no interface with <alias name='%s'/>, <teaming type='persistent'/> and the same MAC (the virtio-net standby of the failover pair)",
				it, it.Standby, it.Standby))
		}
	}
}

// Check returns every problem of vflag's interfaces and metadata: each
// names the interface (its index among the domain's <interface>
// elements, MAC and VF or network) and what to change.
func (d *Domain) Check() error { return errors.Join(d.problems...) }

// Wanted reports whether the domain asks for vflag: it has interfaces
// that are vflag's, or vflag metadata (broken metadata is the user's
// mistake to report, not a reason to start the VM without vflag).
func (d *Domain) Wanted() bool { return d.metadata || len(d.Vflag()) > 0 }

// Vflag returns the interfaces that are vflag's.
func (d *Domain) Vflag() []Interface {
	var out []Interface
	for _, it := range d.Interfaces {
		if it.Marker != MarkNone {
			out = append(out, it)
		}
	}
	return out
}
