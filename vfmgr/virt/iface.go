package virt

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/vfmgr"
)

// errNoVF: the domain has no VF interface with the MAC (any more).
var errNoVF = errors.New("no VF interface")

// liveVF finds, in the running domain's XML, the interface backed by a VF
// (<interface type='hostdev'>; libvirt shows a pool-network interface so
// too) with MAC mac, and the VF's PCI address. A failover pair's virtio
// standby shares the MAC but is no VF: it is skipped.
func liveVF(d *libvirt.Domain, mac net.HardwareAddr) (*libvirtxml.DomainInterface, string, error) {
	raw, err := d.GetXMLDesc(0)
	if err != nil {
		return nil, "", fmt.Errorf("live XML: %w", err)
	}
	return findVF(raw, mac)
}

// findVF is liveVF on the XML text.
func findVF(raw string, mac net.HardwareAddr) (*libvirtxml.DomainInterface, string, error) {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(raw); err != nil {
		return nil, "", fmt.Errorf("live XML: %w", err)
	}
	if dom.Devices == nil {
		return nil, "", fmt.Errorf("%w with MAC %s", errNoVF, mac)
	}
	for i := range dom.Devices.Interfaces {
		x := &dom.Devices.Interfaces[i]
		if x.MAC == nil || !strings.EqualFold(x.MAC.Address, mac.String()) || x.Source == nil || x.Source.Hostdev == nil {
			continue
		}
		pci, err := sourcePCI(x)
		if err != nil {
			return nil, "", err
		}
		return x, pci, nil
	}
	return nil, "", fmt.Errorf("%w with MAC %s", errNoVF, mac)
}

// sourcePCI is the host PCI address of a hostdev interface's VF.
func sourcePCI(x *libvirtxml.DomainInterface) (string, error) {
	p := x.Source.Hostdev.PCI
	if p == nil || p.Address == nil || p.Address.Bus == nil || p.Address.Slot == nil || p.Address.Function == nil {
		return "", fmt.Errorf("interface %s: hostdev source without a PCI address", x.MAC.Address)
	}
	var dom uint
	if p.Address.Domain != nil {
		dom = *p.Address.Domain
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", dom, *p.Address.Bus, *p.Address.Slot, *p.Address.Function), nil
}

// hostdevInterface is a's interface as a plain managed hostdev interface
// (MAC and VLAN), for a Plug with no recorded interface.
func hostdevInterface(a vfmgr.Allocation) libvirtxml.DomainInterface {
	x := libvirtxml.DomainInterface{
		Managed: "yes",
		MAC:     &libvirtxml.DomainInterfaceMAC{Address: a.MAC.String()},
		Source:  &libvirtxml.DomainInterfaceSource{Hostdev: &libvirtxml.DomainInterfaceSourceHostdev{PCI: &libvirtxml.DomainHostdevSubsysPCISource{}}},
		Driver:  &libvirtxml.DomainInterfaceDriver{Name: "vfio"},
	}
	if a.VLAN != 0 {
		x.VLan = &libvirtxml.DomainInterfaceVLan{Tags: []libvirtxml.DomainInterfaceVLanTag{{ID: uint(a.VLAN)}}}
	}
	return x
}

// withVF renders interface x backed by VF pci instead: same MAC, VLAN,
// guest address, <teaming> and driver. libvirt's own alias (hostdev0) is
// dropped — libvirt names the new device — and a user alias (ua-…) kept.
func withVF(x libvirtxml.DomainInterface, pci string) (string, error) {
	c, err := vfmgr.CanonicalPCI(pci)
	if err != nil {
		return "", err
	}
	var f [4]uint
	if _, err := fmt.Sscanf(c, "%x:%x:%x.%x", &f[0], &f[1], &f[2], &f[3]); err != nil {
		return "", fmt.Errorf("VF address %s: %w", pci, err)
	}
	x.Source = &libvirtxml.DomainInterfaceSource{Hostdev: &libvirtxml.DomainInterfaceSourceHostdev{PCI: &libvirtxml.DomainHostdevSubsysPCISource{
		Address: &libvirtxml.DomainAddressPCI{Domain: &f[0], Bus: &f[1], Slot: &f[2], Function: &f[3]},
	}}}
	if x.Alias != nil && !strings.HasPrefix(x.Alias.Name, "ua-") {
		x.Alias = nil
	}
	if x.Managed == "" {
		x.Managed = "yes"
	}
	return x.Marshal()
}
