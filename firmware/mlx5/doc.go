// Package mlx5 is the backend for NVIDIA ConnectX NICs (driver mlx5_core)
// and their VF-LAG: with both PFs of one card in switchdev mode and
// enslaved to one bond, the driver creates a hardware LAG and the NIC
// carries the VFs of both ports to whichever port is active. Nothing is
// re-homed in software while the LAG is active.
//
// What the driver requires comes from the kernel's
// drivers/net/ethernet/mellanox/mlx5/core/lag/lag.c
// (mlx5_lag_check_prereq: every PF with VFs in switchdev mode, both PFs
// in the same eswitch mode, exactly two ports in switchdev LAG) and the
// error it logs when a LAG is activated or deactivated under bound VFs
// ("Make sure all VFs are unbound prior to VF LAG activation or
// deactivation"). So PrepareBond creates the VFs, unbinds them, sets both
// PFs to switchdev, waits for the LAG to become active, and binds the VFs
// again; it refuses when a VF is bound to anything but its host driver
// (vfio-pci: a VM is using it). vflag allows at most 64 VFs per PF in
// hardware mode (MaxVFsPerPF); the limit is the project's (from its
// issue), not a check found in the upstream driver.
//
// The LAG's state is read from the driver's debugfs
// (lag/debugfs.c, Linux >= 5.19): /sys/kernel/debug/mlx5/<PF PCI>/lag/
// state ("active" or "disabled"), type ("switchdev" for VF-LAG), and
// mapping: for the queue-affinity port selection of active-backup, one
// line "<logical port>:<physical port>" per port, every logical port
// mapped to the active physical port once a port is down; for hash port
// selection, the physical ports in use, one per line. Physical port N is
// the card's PCI function N-1. VerifyFailover checks that the mapping
// points at the new port; without debugfs it can only check the bond
// and says so.
//
// This package's tests run against recordings (firmware/nicview) written
// from the kernel sources above, not captured from a ConnectX: the
// project has no ConnectX. The testbed test runs the backend against real
// igb ports, where it must refuse hardware mode and name the driver.
package mlx5
