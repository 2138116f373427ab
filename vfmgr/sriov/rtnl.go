package sriov

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/vflag/vflag/internal/netlinksafe"
)

// pfLink is a PF resolved over rtnetlink.
type pfLink struct {
	// name is the PF's netdev name, index its ifindex.
	name  string
	index int
}

// vfLinks is the rtnetlink side of the VFs, narrowed so that unit tests can
// fake it. The VF list is indexed by VF number.
type vfLinks interface {
	vfs(pf string) (pfLink, []VFConfig, error)
	setMAC(pf pfLink, vf int, mac net.HardwareAddr) error
	setVLAN(pf pfLink, vf, vlan, qos int) error
	setSpoofChk(pf pfLink, vf int, on bool) error
	setTrust(pf pfLink, vf int, on bool) error
}

var _ vfLinks = netlinkVFs{}

// netlinkVFs is vfLinks over rtnetlink. Only the testbed tier (a real igb)
// exercises it: no kernel on a CI host has a NIC with SR-IOV.
type netlinkVFs struct {
	// nl does the look-ups; raw (nil: the default handle) the settings.
	nl  *netlinksafe.Handle
	raw *netlink.Handle
}

func (n netlinkVFs) vfs(pf string) (pfLink, []VFConfig, error) {
	l, err := n.nl.LinkByName(pf)
	if err != nil {
		return pfLink{}, nil, err
	}
	a := l.Attrs()
	out := make([]VFConfig, len(a.Vfs))
	for i, v := range a.Vfs {
		// parseVfInfo numbers the list entries in order: v.ID == i.
		out[i] = VFConfig{MAC: zeroMACToNil(v.Mac), VLAN: v.Vlan, QoS: v.Qos, SpoofChk: v.Spoofchk, Trust: v.Trust != 0}
	}
	return pfLink{name: a.Name, index: a.Index}, out, nil
}

// dev is enough of a netlink.Link for the LinkSetVf calls, which use only
// the ifindex.
func (pf pfLink) dev() netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: pf.name, Index: pf.index}}
}

func (n netlinkVFs) handle() *netlink.Handle {
	if n.raw == nil {
		// The zero Handle is netlink's default handle.
		return &netlink.Handle{}
	}
	return n.raw
}

func (n netlinkVFs) setMAC(pf pfLink, vf int, mac net.HardwareAddr) error {
	if mac == nil {
		mac = make(net.HardwareAddr, 6)
	}
	if err := n.handle().LinkSetVfHardwareAddr(pf.dev(), vf, mac); err != nil {
		return fmt.Errorf("ip link set %s vf %d mac %s: %w", pf.name, vf, mac, err)
	}
	return nil
}

func (n netlinkVFs) setVLAN(pf pfLink, vf, vlan, qos int) error {
	if err := n.handle().LinkSetVfVlanQos(pf.dev(), vf, vlan, qos); err != nil {
		return fmt.Errorf("ip link set %s vf %d vlan %d qos %d: %w", pf.name, vf, vlan, qos, err)
	}
	return nil
}

func (n netlinkVFs) setSpoofChk(pf pfLink, vf int, on bool) error {
	if err := n.handle().LinkSetVfSpoofchk(pf.dev(), vf, on); err != nil {
		return fmt.Errorf("ip link set %s vf %d spoofchk %s: %w", pf.name, vf, onOff(on), err)
	}
	return nil
}

func (n netlinkVFs) setTrust(pf pfLink, vf int, on bool) error {
	if err := n.handle().LinkSetVfTrust(pf.dev(), vf, on); err != nil {
		return fmt.Errorf("ip link set %s vf %d trust %s: %w", pf.name, vf, onOff(on), err)
	}
	return nil
}
