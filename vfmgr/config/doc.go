// Package config reads vflagd's configuration file, /etc/vflag/vflag.yaml:
// the bonds vflag manages (two PFs each, how many VFs of each to hand out,
// the placement policy, failback, the NIC backend), how moved VMs are
// announced, the flap hold-down, the local API socket, the metrics
// listener and where allocations are persisted. testdata/vflag.yaml is a
// commented example of every key.
//
// Decoding is strict: an unknown key, a value of the wrong type, a
// repeated key or a second YAML document is an error, and Validate checks
// every value. Each problem is an *Error naming the file, the line, the key
// ("bonds[0].pfs[1]") and what is expected; Parse and Validate return all
// of them joined.
//
// What needs the kernel (the PFs exist, are ports of their bond, have
// enough VFs) is not checked here: PFs lists what to check, CheckHost
// checks it against the daemon's inventory, and Errorf lets the daemon
// report its own findings at the key's line.
package config
