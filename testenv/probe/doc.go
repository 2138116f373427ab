// Package probe measures what a client of the vflag testbed sees while a
// fault is injected: it pings a VM from inside a network namespace, records
// how the fabric bridges' forwarding databases move the VM's MAC between
// ports, and turns both into a Timeline relative to the moment of the fault.
//
// The pieces:
//
//   - Pinger sends ICMPv4 echo requests at a fixed interval from a raw socket
//     opened inside a namespace (through nsrun.Do) and records one Sample per
//     probe: when it was sent, whether it was answered, the round-trip time.
//   - FDBWatcher subscribes to bridge FDB notifications (RTM_NEWNEIGH and
//     RTM_DELNEIGH of family AF_BRIDGE, see the kernel's
//     net/bridge/br_fdb.c fdb_notify) in a namespace and records learned
//     entries of the watched MACs as FDBEvents.
//   - Timeline holds one measured scenario; Summarize reduces it to the
//     figures a report quotes (lost probes, the outage around the fault, the
//     recovery time, FDB moves).
//   - WriteJSON writes the results file (Report), WriteText a human summary
//     with an ASCII strip, and WriteSVG the timeline picture.
//
// Times in reports and pictures are milliseconds relative to the fault
// (negative before it). Probes are placed at the time they were sent.
package probe
