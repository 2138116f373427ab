// Package firmware will hold the NIC-family backends: what each NIC can do
// on a bond failover and how to make it do it. The generic backend re-homes
// VFs in software on any SR-IOV NIC; the ice and mlx5 backends set up and
// verify the NICs' own VF-LAG (switchdev, LLDP, enslave order, VF counts) and
// fall back to software where the hardware cannot move a VF.
package firmware
