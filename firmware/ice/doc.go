// Package ice is the backend for the Intel E810 (driver ice) and its
// in-kernel SR-IOV VF-LAG (Linux >= 6.6): in an active-backup bond of
// both ports of one E810, the driver moves the scheduler nodes and queues
// of the VFs of the bond's primary (the port enslaved first) to the newly
// active port, so those VFs keep working without the VM noticing. The
// VFs of the other port do not follow: vflagd re-homes them in software,
// as the generic backend does (PlanFailover splits the two).
//
// What the driver requires, and this backend checks (Preflight) and sets
// up where it can (PrepareBond), comes from the kernel's ice_lag.c
// (ice_lag_chk_comp, ice_lag_changeupper_event,
// ice_lag_init_feature_support_flag), ice_eswitch.c
// (ice_eswitch_mode_set) and Intel's "E810 eSwitch Switchdev Mode
// Technology and Configuration Guide", section "SR-IOV VF LAG":
//
//   - both ports bound to ice, on one card: the same PCI bus and device
//     (ice_lag.c compares bus and slot), different functions; the same
//     devlink serial number (the card's PCIe DSN);
//   - a kernel of 6.6 or later (the VF-LAG code was merged for 6.6);
//   - NVM (firmware) 4.30 or later for active-backup (Intel's guide);
//   - the bond in active-backup mode with at most two ports, both ice;
//   - the primary, the first port enslaved, in switchdev eswitch mode, set
//     before any VF exists on it (ice refuses to change the eswitch mode
//     while VFs exist: "Changing eswitch mode is allowed only if there is
//     no VFs created") and before it joins the bond (the driver sets up
//     the shared switch only when a port is enslaved);
//   - the firmware LLDP agent off on both ports (private flag
//     fw-lldp-agent), and both ports' local DCB configuration identical;
//   - a DDP package with the VF-LAG recipe and an NVM that has the
//     capability: the driver decides this at probe and says nothing in
//     sysfs or devlink, so the backend only reports the package it sees.
//
// The driver exposes no VF-LAG state to user space (no sysfs, devlink or
// debugfs attribute; only kernel log lines such as "Primary interface not
// in switchdev mode - VF LAG disabled"). VerifyFailover therefore checks
// what can be seen after the switch: the bond's active port is the new
// one, the primary is still first and in switchdev mode, LLDP is still
// off on both ports and their DCB still matches. It cannot observe the
// VF's queues moving; say so rather than pretend.
//
// This package's tests run against recordings (firmware/nicview) written
// from the documents above, not captured from an E810: the project has no
// E810. The testbed test runs the backend against real igb ports, where it
// must refuse hardware mode and name the driver.
package ice
