// Package rdmamgr will keep the host's RDMA working across the loss of a
// port: it discovers RDMA devices over rdma netlink, verifies a NIC's RoCE
// LAG where the hardware has one, and otherwise binds Soft-RoCE (rdma_rxe)
// to the bond so RDMA follows the active port.
package rdmamgr
