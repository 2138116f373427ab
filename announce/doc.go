// Package announce will send the frames that tell the switches where a VM
// now lives after a failover: gratuitous ARP (RFC 5227), unsolicited
// neighbour advertisements (RFC 4861) and, for a MAC with no known address,
// a RARP-style frame as QEMU's announce-self sends, per VM MAC and VLAN, from
// the new active PF over AF_PACKET.
package announce
