package rdmamgr

import (
	"errors"
	"fmt"
	"net/netip"
)

// Mode is how RDMA is kept alive on one bond.
type Mode string

const (
	// ModeHW relies on the NIC's RoCE LAG: one hardware RDMA device for
	// the whole bond (mlx5_bond_0 on bond0). vflag only verifies it.
	ModeHW Mode = "hw"
	// ModeSoft binds a Soft-RoCE device (rdma_rxe) named rxe_<bond> to the
	// bond netdev, so RDMA follows the bond's active port.
	ModeSoft Mode = "soft"
	// ModeOff keeps no RDMA on the bond: the rxe_<bond> device vflag
	// created, if any, is deleted.
	ModeOff Mode = "off"
)

// Validate reports whether m is one of ModeHW, ModeSoft and ModeOff; the
// error matches ErrUnknownMode.
func (m Mode) Validate() error {
	switch m {
	case ModeHW, ModeSoft, ModeOff:
		return nil
	}
	return fmt.Errorf("%w %q: use hw, soft or off", ErrUnknownMode, string(m))
}

// Errors callers branch on. Ensure's errors wrap one of them; the text
// around it names the bond and devices and says how to fix it.
var (
	// ErrUnknownMode: the mode is not hw, soft or off.
	ErrUnknownMode = errors.New("unknown RDMA mode")
	// ErrNotBond: the netdev named as the bond does not exist or is not a
	// bond (no /sys/class/net/NAME/bonding).
	ErrNotBond = errors.New("not a bond")
	// ErrNoRDMA: the kernel has no RDMA core (NETLINK_RDMA is not
	// available: ib_core is not loaded).
	ErrNoRDMA = errors.New("kernel has no RDMA support loaded")
	// ErrNoLAG: mode hw, but no single hardware RDMA device serves the
	// bond (the NIC's RoCE LAG is not engaged, or the NIC has no RDMA).
	ErrNoLAG = errors.New("no RoCE LAG on the bond")
	// ErrNoRXEModule: mode soft, but the rdma_rxe module is not loaded.
	ErrNoRXEModule = errors.New("rdma_rxe module not loaded")
	// ErrNoAddress: the bond has no IP address, so a RoCE GID table on it
	// would be empty (RoCE v2 reaches peers by IP).
	ErrNoAddress = errors.New("no IP address on the bond")
	// ErrPortRXE: a Soft-RoCE device sits on one of the bond's ports
	// instead of the bond: it dies with that port.
	ErrPortRXE = errors.New("rxe device on a port of the bond")
	// ErrNameTaken: a device called rxe_<bond> exists but is not a
	// Soft-RoCE device on the bond.
	ErrNameTaken = errors.New("device name taken")
	// ErrNotReady: the RDMA device is not bound to the bond or lacks GIDs
	// for the bond's addresses (after creation: within the 2 s vflag waits).
	ErrNotReady = errors.New("rdma device not ready")
	// ErrPortDown: the RDMA device's port is not ACTIVE.
	ErrPortDown = errors.New("rdma port not active")
	// ErrLeftover: mode off, but vflag's rxe_<bond> device still exists.
	ErrLeftover = errors.New("rdma device left over")
	// ErrGIDRenumber: mode soft with the Soft-RoCE device on the bond
	// itself. It works, but its connections die on every failover: the
	// kernel deletes and re-adds the bond's GIDs at new indexes on
	// NETDEV_BONDING_FAILOVER (drivers/infiniband/core/roce_gid_mgmt.c),
	// and rxe fails each QP whose source GID index is gone. A bridge above
	// the bond gets no such event, so vflag binds Soft-RoCE there.
	ErrGIDRenumber = errors.New("connections do not survive a failover")
)

// PortState is an RDMA port's logical state as the kernel names it
// (ib_port_state, drivers/infiniband/core/sysfs.c state_show: "4: ACTIVE").
type PortState string

const (
	// PortDown: no link (for RoCE: the netdev is down or has no carrier).
	PortDown PortState = "DOWN"
	// PortInit: link up, not yet configured (InfiniBand).
	PortInit PortState = "INIT"
	// PortArmed: configured, not yet active (InfiniBand).
	PortArmed PortState = "ARMED"
	// PortActive: the port passes traffic.
	PortActive PortState = "ACTIVE"
)

// GIDType is the RoCE version of a GID table entry, as sysfs
// gid_attrs/types/N names it (drivers/infiniband/core/cache.c gid_type_str).
type GIDType string

const (
	// RoCEv1 is an Ethernet-only GID ("IB/RoCE v1"; on InfiniBand ports,
	// the native type).
	RoCEv1 GIDType = "IB/RoCE v1"
	// RoCEv2 is a routable, UDP-encapsulated GID ("RoCE v2"): the only
	// type rdma_rxe offers.
	RoCEv2 GIDType = "RoCE v2"
)

// GID is one valid entry of a port's GID table.
type GID struct {
	// Index is the entry's index in the table (sysfs gids/INDEX): what an
	// application passes as sgid_index.
	Index int
	// Addr is the address the GID carries: an IPv4 GID (::ffff:a.b.c.d) is
	// given as the IPv4 address.
	Addr netip.Addr
	// Type is the RoCE version; "" when the kernel does not say (InfiniBand).
	Type GIDType
	// Netdev is the netdev the entry belongs to (gid_attrs/ndevs/INDEX):
	// the bond for the bond's addresses; "" when the kernel does not say.
	Netdev string
}

// Port is one port of an RDMA device.
type Port struct {
	// Number is the port number, from 1.
	Number int
	// State is the logical state.
	State PortState
	// Netdev is the netdev the kernel ties the port to: an rxe device's
	// parent, otherwise the netdev of the port's default GID (index 0) or
	// of its PCI function. For mlx5's RoCE LAG this is the bond's active
	// port (mlx5_lag_get_roce_netdev), not the bond. "" when unknown.
	Netdev string
	// GIDs are the valid GID entries, by index.
	GIDs []GID
}

// Device is an RDMA device, as `rdma dev` and sysfs describe it.
type Device struct {
	// Name is the device name (rxe_bond0, mlx5_bond_0, irdma0).
	Name string
	// Index is the kernel's device index.
	Index uint32
	// Driver is the driver behind the device: the PCI driver of the NIC
	// (mlx5_core, ice, bnxt_en, ...), or "rxe" / "siw" for the software
	// devices, which have no PCI function.
	Driver string
	// NodeGUID is the node GUID as sysfs node_guid and `ibv_devinfo` print
	// it: "0002:c903:0000:abcd".
	NodeGUID string
	// FirmwareVersion is the firmware version ("" for software devices).
	FirmwareVersion string
	// Ports are the device's ports, by number.
	Ports []Port
}

// Soft reports whether d is a software RDMA device (rxe or siw).
func (d Device) Soft() bool { return d.Driver == driverRXE || d.Driver == driverSIW }

// Status is the RDMA state of one bond in one mode, for `vflag status` and
// `vflag doctor`.
type Status struct {
	// Bond is the bond netdev.
	Bond string
	// Mode is the mode the bond was checked against.
	Mode Mode
	// Device is the RDMA device that serves the bond ("" when none does; in
	// mode off, a leftover rxe_<bond>).
	Device string
	// Port is Device's port on the bond (0 when Device is "").
	Port int
	// State is that port's state.
	State PortState
	// Netdev is the netdev the port sits on (see Port.Netdev).
	Netdev string
	// GIDs are the port's GID entries.
	GIDs []GID
	// Healthy is true when Problems is empty.
	Healthy bool
	// Problems are one-line findings, each ending with how to fix it.
	Problems []string
}
