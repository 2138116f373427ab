// Package vfmgr is the VF manager at the heart of vflagd: the inventory of
// physical and virtual functions, allocation of VFs from a bond's PFs, the
// MAC and VLAN of every VM's VF, the bond watcher that turns rtnetlink
// messages into failover events, and the failover planner that decides how
// each VM's traffic follows the surviving port.
//
// The decision logic here is pure, with no I/O and no clock:
//
//   - Pool holds one bond's two PFs and their VFs, which are free and which
//     held, the active PF and each PF's carrier. Pool.Allocate hands out
//     VFs under a Policy (ActiveFirst, spilling to the backup PF; or
//     Balance over both PFs with carrier) and refuses duplicate MACs;
//     Pool.Release gives them back.
//   - State gathers the pools. State.Plan takes an Event and returns a
//     Plan: the VMs to move (same MAC, VLAN, QoS, trust on a free VF of the
//     other PF), the MACs to announce on their new port, and the VMs that
//     cannot be moved. State.Apply returns the State after a plan.
//   - FSM decodes link messages (LinkMsg) into Events, damping flapping
//     ports with a hold-down; the caller owns time (Feed, Tick).
//
// The daemon wires them: the socket reader converts netlink updates to
// LinkMsgs, the FSM emits Events, State.Plan decides, the executor re-homes
// VFs and announces, State.Apply records, the store persists allocations.
package vfmgr
