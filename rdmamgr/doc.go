// Package rdmamgr keeps the host's RDMA working when one port of a bonded
// NIC fails.
//
// Hardware RDMA queues are bound to one port and know nothing of the bond
// above it, so RDMA traffic (storage: NVMe-oF, iSER) dies with a single link
// error (Intel, Linux Plumbers 2019). Upstream ice turns RDMA off when a PF
// joins a bond; mlx5 offers RoCE LAG (one RDMA device, mlx5_bond_N, for the
// bond) only without SR-IOV VFs or in switchdev mode. Manager.Ensure puts a
// bond into one of three modes:
//
//   - hw: verify that the NIC's RoCE LAG serves the bond, and say exactly why
//     not (the per-port devices found, or the ports' drivers);
//   - soft: bind a Soft-RoCE device, rxe_<bond> (rdma_rxe), above the bond
//     (see below), so that RDMA follows the bond's active port; refuse
//     without the module, without an address, and while an rxe device sits
//     on a port; delete a device it created that does not show a GID for
//     each address within 2 s;
//   - off: delete rxe_<bond>, and nothing else.
//
// Soft-RoCE on the bond netdev itself is not enough: on every failover the
// bond raises NETDEV_BONDING_FAILOVER, and the RDMA core's GID management
// (drivers/infiniband/core/roce_gid_mgmt.c, netdevice_event) deletes the
// bond's IP GIDs and adds them again at new indexes. rxe looks up each
// QP's source GID by index for every packet it sends (rxe_init_packet), so
// every open connection fails ("Failed allocating skb", then the QP is
// flushed); seen on Linux 6.12 in the testbed. A Linux bridge above the
// bond does not pass that event on, and its GIDs keep their indexes, so
// when the bond is a bridge port (the usual KVM host layout: br0 over
// bond0 with the host's address) mode soft binds rxe_<bond> to the bridge
// and takes the bridge's addresses; on a bond that is no bridge port it
// binds to the bond and reports ErrGIDRenumber with the fix.
//
// Manager.Check reads the same state without changing it, for status and
// doctor: one line per problem, each with its fix. Manager.Devices lists
// every RDMA device with its driver, node GUID and ports (state, netdev,
// GID table).
//
// The device list (name, index, node GUID, firmware) comes from rdma netlink
// and everything else from sysfs under an injectable root (Manager.Sysfs),
// laid out as the kernel does:
//
//	class/infiniband/rxe_bond0/parent                      bond0 (rxe only)
//	class/infiniband/rxe_bond0/ports/1/state               4: ACTIVE
//	class/infiniband/rxe_bond0/ports/1/gids/1              0000:0000:0000:0000:0000:ffff:c612:000b
//	class/infiniband/rxe_bond0/ports/1/gid_attrs/types/1   RoCE v2
//	class/infiniband/rxe_bond0/ports/1/gid_attrs/ndevs/1   bond0
//	class/infiniband/mlx5_0/device/driver -> .../drivers/mlx5_core
//	class/infiniband/mlx5_0/device/net/ens1f0/
//	class/net/bond0/bonding/slaves                         pf0 pf1
//	class/net/bond0/master -> ../br0                       (bridge port)
//	class/net/br0/bridge/
//	module/rdma_rxe/
//
// Netlink goes through the LinkAPI seam (Manager.Links): unit tests fake it
// together with a fake sysfs tree; the real Netlink needs a kernel with an
// RDMA core and is exercised only by the nested-QEMU testbed (rdma_rxe in
// the guest's Debian 6.12 kernel).
package rdmamgr
