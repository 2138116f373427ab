package hooks

import (
	"fmt"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/vfmgr"
)

// PoolNetwork renders the libvirt network through which VMs take VFs of
// bond's pool: vflag-<bond>, <forward mode='hostdev' managed='yes'> with
// the VFs' PCI addresses (canonical form). vflagd keeps it listing the
// free VFs of the bond's active PF, so that the VF libvirt picks is one
// vflagd would have picked; the start hook then adopts it.
func PoolNetwork(bond string, vfs []string) (string, error) {
	if bond == "" || strings.ContainsAny(bond, "/ \t\n") {
		return "", fmt.Errorf("pool network: %q is not a bond name", bond)
	}
	n := libvirtxml.Network{
		Name: NetworkPrefix + bond,
		Forward: &libvirtxml.NetworkForward{
			Mode: "hostdev", Managed: "yes",
			Driver: &libvirtxml.NetworkForwardDriver{Name: "vfio"},
		},
	}
	for _, pci := range vfs {
		c, err := vfmgr.CanonicalPCI(pci)
		if err != nil {
			return "", fmt.Errorf("pool network %s: %w", n.Name, err)
		}
		var f [4]uint
		for i, part := range strings.FieldsFunc(c, func(r rune) bool { return r == ':' || r == '.' }) {
			v, _ := strconv.ParseUint(part, 16, 16)
			f[i] = uint(v)
		}
		n.Forward.Addresses = append(n.Forward.Addresses, libvirtxml.NetworkForwardAddress{
			PCI: &libvirtxml.NetworkForwardAddressPCI{Domain: &f[0], Bus: &f[1], Slot: &f[2], Function: &f[3]},
		})
	}
	return n.Marshal()
}

// PoolNetworkVFs reads a pool network's XML: its bond and VFs, or an
// error saying why it is not one of vflag's.
func PoolNetworkVFs(raw string) (bond string, vfs []string, err error) {
	var n libvirtxml.Network
	if err := n.Unmarshal(raw); err != nil {
		return "", nil, fmt.Errorf("network XML: %w", err)
	}
	if !strings.HasPrefix(n.Name, NetworkPrefix) {
		return "", nil, fmt.Errorf("network %s: a vflag pool is named %s<bond>", n.Name, NetworkPrefix)
	}
	if n.Forward == nil || n.Forward.Mode != "hostdev" {
		return "", nil, fmt.Errorf("network %s: a vflag pool is <forward mode='hostdev' managed='yes'>", n.Name)
	}
	for _, a := range n.Forward.Addresses {
		p := a.PCI
		if p == nil || p.Bus == nil || p.Slot == nil || p.Function == nil {
			return "", nil, fmt.Errorf("network %s: every <address> is type='pci' with bus, slot and function", n.Name)
		}
		var dom uint
		if p.Domain != nil {
			dom = *p.Domain
		}
		c, err := vfmgr.CanonicalPCI(fmt.Sprintf("%x:%x:%x.%x", dom, *p.Bus, *p.Slot, *p.Function))
		if err != nil {
			return "", nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
		vfs = append(vfs, c)
	}
	return strings.TrimPrefix(n.Name, NetworkPrefix), vfs, nil
}
