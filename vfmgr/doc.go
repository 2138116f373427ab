// Package vfmgr will hold the VF manager at the heart of vflagd: the
// inventory of physical and virtual functions (from rtnetlink and sysfs),
// allocation of VFs from the bond's active PF (spilling to the backup PF, or
// balancing over both), the MAC and VLAN of every VM's VF, the bond watcher
// that turns rtnetlink messages into failover events, and the failover
// planner and executor that move each VM's traffic to the surviving port.
package vfmgr
