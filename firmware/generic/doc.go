// Package generic is the software backend for any SR-IOV NIC (igb, ixgbe,
// i40e, ...): the NIC moves nothing on a bond failover, so vflagd re-homes
// every VM to a VF of the surviving port. It serves every driver that has
// no backend of its own (firmware.ForDriver), and its checks (Findings)
// are the base the ice and mlx5 backends add their VF-LAG checks to: a
// VF the hardware cannot carry takes the software path there too.
//
// Preflight checks, without changing anything: sriov_totalvfs against
// vfs_per_pf and carrier on each port; the bond's mode (active-backup),
// its link monitoring (miimon or ARP with targets) and that both ports
// and no others are enslaved; that the VFs vflag hands out keep spoof
// checking on and trust off once they carry a MAC. Host-wide checks
// (IOMMU, libvirt) belong to `vflag doctor`. Hardware mode is refused
// with the driver named.
package generic
