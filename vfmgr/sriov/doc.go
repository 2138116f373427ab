// Package sriov is the kernel side of SR-IOV for vflagd: what a PF and its
// VFs are (sysfs and rtnetlink), how many VFs a PF has (sriov_numvfs), and
// the per-VF settings a PF enforces on its VFs (MAC, port VLAN and QoS,
// spoof checking, trust), set over rtnetlink as `ip link set PF vf N ...`
// does.
//
// Kernel reads sysfs under an injectable root (Kernel.Sysfs, default /sys),
// so the sysfs parsing is unit-tested against a fake tree with the kernel's
// layout:
//
//	class/net/pf0 -> ../../devices/pci0000:00/0000:01:00.0/net/pf0
//	class/net/pf0/device -> ../../../0000:01:00.0
//	class/net/pf0/master -> ../../../../virtual/net/bond0  (with bonding/)
//	0000:01:00.0/driver -> ../../../bus/pci/drivers/igb
//	0000:01:00.0/sriov_totalvfs, sriov_numvfs
//	0000:01:00.0/virtfn0 -> ../0000:01:10.0
//	0000:01:10.0/net/eth2/
//
// The rtnetlink side goes through internal/netlinksafe and a
// *netlink.Handle (Kernel.Handle), behind an unexported seam that unit tests
// fake to check the order of the settings and the rollback. The calls
// themselves (LinkSetVf*, and the IFLA_VFINFO_LIST a PF reports) need a NIC
// with SR-IOV, which only the nested-QEMU testbed has (igb): those paths are
// covered by the testbed tier only (see testenv), not by this package's
// tests.
//
// Sysfs and Handle must look at the same network namespace (vflagd: the
// host's), since sysfs shows the netdevs of the namespace that mounted it.
package sriov
