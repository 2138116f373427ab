package vfmgr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrNoFreeVF: no VF is free on any PF the policy may use.
	ErrNoFreeVF = errors.New("no free VF")
	// ErrNotManaged: the bond, PF, VF or VM is not one vflag manages.
	ErrNotManaged = errors.New("not managed by vflag")
	// ErrDuplicateMAC: another VM already holds the MAC.
	ErrDuplicateMAC = errors.New("MAC already allocated")
)

// PF is a physical function that is a port of a managed bond.
type PF struct {
	// Name is the PF's netdev ("pf0", "ens1f0").
	Name string
	// PCI is its PCI address ("0000:01:00.0").
	PCI string
	// Driver is the kernel driver bound to it ("igb", "ice", "mlx5_core").
	Driver string
	// Bond is the bond it is enslaved to.
	Bond string
	// TotalVFs is sriov_totalvfs; NumVFs is sriov_numvfs.
	TotalVFs, NumVFs int
	// Carrier is the PF's link state.
	Carrier bool
}

// VF is one virtual function of a PF, as the kernel reports it.
type VF struct {
	// PF is the name of the VF's physical function.
	PF string
	// Index is the VF number on its PF (the N of `ip link set PF vf N`).
	Index int
	// PCI is the VF's PCI address.
	PCI string
	// Netdev is its netdev name when a host driver is bound ("" when
	// passed through to a guest or unbound).
	Netdev string
	// Driver is the PCI driver bound to the VF ("igbvf", "iavf",
	// "vfio-pci"; "" when none). A VF on vfio-pci is assigned to a guest.
	Driver string
	// MAC is the administrative MAC set through the PF.
	MAC net.HardwareAddr
	// VLAN and QoS are the port VLAN set through the PF (0 = none).
	VLAN, QoS int
	// SpoofChk and Trust are the PF's per-VF switches.
	SpoofChk, Trust bool
}

// ID names a VF for logs and errors: "pf0 vf 3 (0000:01:10.4)".
func (v VF) ID() string { return fmt.Sprintf("%s vf %d (%s)", v.PF, v.Index, v.PCI) }

// VFRef identifies a VF by PF and index.
type VFRef struct {
	// PF is the physical function's netdev name.
	PF string
	// Index is the VF number on it.
	Index int
}

// String renders the ref for logs and errors: "pf0 vf 3".
func (r VFRef) String() string { return fmt.Sprintf("%s vf %d", r.PF, r.Index) }

// Allocation is one VM interface's hold on a VF, as persisted.
type Allocation struct {
	// VM names the VM (libvirt domain name or UUID, or a testbed namespace).
	VM string
	// Iface tells the VM's interfaces apart (the MAC as text by default).
	Iface string
	// MAC is the address the VM uses; it follows the VM across failovers.
	MAC net.HardwareAddr
	// VLAN and QoS are the VM's port VLAN (0 = untagged).
	VLAN, QoS int
	// Trust is the VM's trust setting (off by default).
	Trust bool
	// Bond is the bond whose ports serve the VM.
	Bond string
	// VF is the VF the VM holds now.
	VF VFRef
	// Home is the PF the VM was first placed on. It does not change when
	// the VM fails over; with the balance policy and a failback delay the
	// failover planner moves the VM back to it. Empty in records written
	// before the field existed: read it as VF.PF.
	Home string
	// Addrs are the VM's known IP addresses, for announcements.
	Addrs []netip.Addr
	// Since is when the VM got this VF.
	Since time.Time
	// Netns, for a namespace VM (the testbed's stand-in for a guest), is
	// the network namespace that holds the VF's netdev, and NetnsIfname its
	// name there. Empty for libvirt VMs.
	Netns, NetnsIfname string
	// Mode says how the VM keeps its connectivity when its PF loses its
	// link (see Mode); the libvirt hook sets it.
	Mode Mode
	// DomainUUID is the libvirt domain's UUID ("" for other VMs).
	DomainUUID string
}

// Mode says how a VM interface keeps its connectivity when the PF of its
// VF loses its link. The libvirt hook tells it (hooks/README.md).
type Mode string

const (
	// ModeDefault ("") leaves it to vflagd: it re-homes the interface onto
	// a VF of the surviving PF and hands that to the VM side (namespace
	// VMs, `vflag attach`).
	ModeDefault Mode = ""
	// ModeAdopt records and configures a VF someone else placed (OpenStack
	// Nova's PCI tracker, a hand-written hostdev): vflag keeps its MAC,
	// VLAN and spoof check, announces it, and never moves it.
	ModeAdopt Mode = "adopt"
	// ModeFailover is a VF primary paired with a virtio-net standby
	// (libvirt <teaming>): the guest's net_failover carries traffic over
	// the standby while vflagd gives the VM a VF of the surviving PF.
	ModeFailover Mode = "failover"
	// ModeHotswap has vflagd hot-unplug the VF and hot-plug one of the
	// surviving PF with the same MAC.
	ModeHotswap Mode = "hotswap"
)

// pinned says why vflagd must not re-home an interface of mode m onto
// another VF ("" when it may). A move configures the new VF and resets
// the old one, so the VM must be handed the new VF: namespace VMs and
// `vflag attach` interfaces by the VM side, libvirt domains of mode
// failover and hotswap by vflagd's libvirt side (libvirt true when it is
// on). Adopted VFs never move: Nova's PCI tracker placed them.
func (m Mode) pinned(libvirt bool) string {
	switch m {
	case ModeAdopt:
		return "its VF was placed by someone else (mode adopt): vflag does not move it"
	case ModeFailover, ModeHotswap:
		if !libvirt {
			return fmt.Sprintf("vflagd's libvirt side is off (libvirt not installed, or libvirt: enabled: false), so it cannot hand the VM (mode %s) another VF", m)
		}
	}
	return ""
}

// Movable reports whether vflagd may re-home an interface of mode m onto
// another VF, with its libvirt side on (libvirt) or off.
func (m Mode) Movable(libvirt bool) bool { return m.pinned(libvirt) == "" }

// Valid reports whether m is a mode vflag knows.
func (m Mode) Valid() bool {
	switch m {
	case ModeDefault, ModeAdopt, ModeFailover, ModeHotswap:
		return true
	}
	return false
}

// Key is the allocation's identity: VM and interface.
func (a Allocation) Key() string { return a.VM + "/" + a.Iface }
