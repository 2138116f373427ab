// Package announce sends the frames that tell the switches where a VM now
// lives after a failover: for every VM MAC, on the new active PF, one
// gratuitous ARP per IPv4 address (an ARP announcement, RFC 5227 §3), one
// unsolicited neighbour advertisement per IPv6 address (RFC 4861 §7.2.6) and,
// for a MAC with no known address, the RARP frame QEMU's announce-self sends
// (RFC 903 layout). A switch learns the source MAC of each frame on the port
// it arrived on, so any one of them moves the forwarding entry; the ARP and NA
// frames also refresh the neighbour caches of hosts on the segment.
//
// The package has three layers:
//
//   - [Announcement] says what to announce (MAC, VLAN, 802.1p priority,
//     addresses) and [Announcement.Validate] checks it.
//   - [GratuitousARP], [UnsolicitedNA], [RARP] and [Frames] build complete
//     Ethernet frames, 802.1Q-tagged when the VLAN or priority is non-zero,
//     with no I/O.
//   - [Announcer] sends the frames of many announcements in rounds, the way
//     Linux bonding repeats its notifications (num_grat_arp/num_unsol_na,
//     peer_notif_delay), through a [Sender]; [PacketSender] is the AF_PACKET
//     implementation.
//
// Frames leave with the VM's MAC as Ethernet source, not the PF's: that is
// what makes a switch move the MAC to the new port.
package announce
