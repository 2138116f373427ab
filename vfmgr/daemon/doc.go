// Package daemon is vflagd: it owns the VF manager's state and connects it
// to the world. At start it takes the inventory of each managed bond's PFs
// (creating VFs up to the configured count, adopting what exists), loads
// the allocation table, finishes or rolls back a failover a crash
// interrupted, and reconciles the table with the kernel. Then it feeds
// rtnetlink link messages to the bond FSM and executes the failover plans
// the planner returns: configure the surviving PF's VF with the VM's MAC,
// VLAN and settings, hand it to the VM side, reset the old VF, persist,
// and announce the VM's MAC from the new port. It serves the local API.
//
// Every kernel, store, VM-side and announcement touch goes through an
// interface declared here, so the decisions can be tested with fakes and
// the same code runs against real igb in the testbed.
package daemon
