// Package nicview is what the NIC-family backends (firmware/generic, ice,
// mlx5) see of a host and how they change it: sysfs and debugfs under one
// root, devlink (eswitch mode, device info), ethtool (driver and firmware
// version, private flags), DCB, the kernel release, PCI bind/unbind, and
// the SR-IOV side of vfmgr/sriov.
//
// Host is the running kernel. Recording is a recorded device: a YAML file
// of what the kernel answered (or, for NICs the project has no hardware
// of, what the kernel's and vendor's public documentation says it
// answers), materialized as a sysfs tree in a directory so that the same
// sysfs-reading code runs over it, and answering devlink, ethtool and DCB
// from the file. A Recording applies the changes it is asked for to its
// state and logs each one as the command that would make it, so a test
// compares what a backend did as text.
package nicview
