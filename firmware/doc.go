// Package firmware holds the NIC-family backends (plugin.Backend): what
// each NIC can do on a bond failover and how to make it do it.
//
//   - firmware/generic re-homes VFs in software on any SR-IOV NIC (igb,
//     ixgbe, i40e, ...): vflagd moves a VM to a VF of the surviving port.
//   - firmware/ice drives the Intel E810's in-kernel SR-IOV VF-LAG
//     (Linux >= 6.6): switchdev before VFs exist, firmware LLDP agent off,
//     both ports of one card enslaved primary first; the driver moves the
//     primary's VFs only, so the backup's VFs stay on the software path.
//   - firmware/mlx5 drives NVIDIA ConnectX VF-LAG: switchdev on both PFs,
//     at most 64 VFs per PF, VFs unbound while the LAG forms, and the LAG's
//     state read back from debugfs.
//
// Each backend reads and changes the host through firmware/nicview, whose
// Recording lets the ice and mlx5 knowledge be tested against recorded
// device answers. ForDriver picks the backend for `backend: auto`.
package firmware
