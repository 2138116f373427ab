package announce

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// Wire constants the builders use.
const (
	// etherTypeRARP is the EtherType of reverse ARP (RFC 903).
	etherTypeRARP ethernet.EtherType = 0x8035
	// opReverseRequest is the RARP "request reverse" operation (RFC 903).
	opReverseRequest arp.Operation = 3

	ipv6HeaderLen = 40
	// naLen is the ICMPv6 NA (RFC 4861 §4.4: type, code, checksum, flags,
	// reserved, target = 24 bytes) plus one Target Link-Layer Address option
	// for Ethernet (§4.6.1: type, length in units of 8 bytes, MAC = 8 bytes).
	naLen           = 24 + 8
	protoICMPv6     = 58
	icmpv6TypeNA    = 136
	naFlagOverride  = 0x20 // first flags byte: R=0x80, S=0x40, O=0x20
	optTargetLLAddr = 2
)

// GratuitousARP builds the ARP announcement of RFC 5227 §2.3 for ip, sent by
// a's MAC: an ARP request (op 1, RFC 826; a request rather than a reply for
// the reasons of RFC 5227 §3) with sender hardware address = MAC, sender and
// target protocol address = ip, target hardware address zero, broadcast to
// ff:ff:ff:ff:ff:ff from MAC. Linux bonding's num_grat_arp sends the same
// shape. ip must be IPv4 (or IPv4-mapped IPv6).
//
// Like every builder here, it returns a complete Ethernet frame without FCS,
// with an 802.1Q tag when a.VLAN or a.Priority is non-zero, and with the
// payload zero-padded to the 46-byte minimum of IEEE 802.3: untagged frames
// are at least 60 bytes, tagged ones at least 64, so a switch that strips the
// tag still holds a full-size frame.
func GratuitousARP(a Announcement, ip netip.Addr) ([]byte, error) {
	if err := a.validateLink(); err != nil {
		return nil, err
	}
	if err := validateAddr(ip); err != nil {
		return nil, fmt.Errorf("gratuitous arp for %s: %w", a.MAC, err)
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return nil, fmt.Errorf("gratuitous arp for %s: %s is not an IPv4 address: %w", a.MAC, ip, ErrInvalid)
	}
	zeroMAC := make(net.HardwareAddr, 6)
	p, err := arp.NewPacket(arp.OperationRequest, a.MAC, ip, zeroMAC, ip)
	if err != nil {
		return nil, fmt.Errorf("gratuitous arp for %s %s: %w", a.MAC, ip, err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("gratuitous arp for %s %s: %w", a.MAC, ip, err)
	}
	return frame(a, ethernet.Broadcast, ethernet.EtherTypeARP, payload)
}

// UnsolicitedNA builds the unsolicited neighbour advertisement of RFC 4861
// §7.2.6 for ip, sent by a's MAC: Ethernet to 33:33:00:00:00:01 (RFC 2464
// §7), IPv6 from ip itself to the all-nodes group ff02::1 with hop limit 255
// (§7.1.2 requires it of receivers), ICMPv6 type 136 code 0 with Router=0,
// Solicited=0, Override=1 (§4.4), target = ip and one Target Link-Layer
// Address option (§4.6.1) carrying the MAC. The ICMPv6 checksum covers the
// IPv6 pseudo-header (RFC 8200 §8.1). ip must be IPv6 and not IPv4-mapped;
// a zone is ignored. Frame format as for GratuitousARP.
func UnsolicitedNA(a Announcement, ip netip.Addr) ([]byte, error) {
	if err := a.validateLink(); err != nil {
		return nil, err
	}
	if err := validateAddr(ip); err != nil {
		return nil, fmt.Errorf("unsolicited na for %s: %w", a.MAC, err)
	}
	if !ip.Is6() || ip.Is4In6() {
		return nil, fmt.Errorf("unsolicited na for %s: %s is not an IPv6 address: %w", a.MAC, ip, ErrInvalid)
	}
	src := ip.As16()
	// The all-nodes group ff02::1 and its Ethernet mapping (RFC 2464 §7).
	dst := [16]byte{0: 0xff, 1: 0x02, 15: 0x01}
	dstMAC := net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}

	b := make([]byte, ipv6HeaderLen+naLen)
	// IPv6 header (RFC 8200 §3): version 6, traffic class 0, flow label 0.
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], naLen)
	b[6] = protoICMPv6
	b[7] = 255 // hop limit
	copy(b[8:24], src[:])
	copy(b[24:40], dst[:])

	m := b[ipv6HeaderLen:]
	m[0] = icmpv6TypeNA
	m[1] = 0 // code
	// m[2:4] checksum, below; m[4:8] flags and reserved.
	m[4] = naFlagOverride
	copy(m[8:24], src[:])
	m[24] = optTargetLLAddr
	m[25] = 1 // length in units of 8 bytes
	copy(m[26:32], a.MAC)
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(src, dst, m))

	return frame(a, dstMAC, ethernet.EtherTypeIPv6, b)
}

// RARP builds the frame QEMU's announce-self (qemu_announce_self) sends for
// a NIC: a reverse ARP request (RFC 903: op 3, hardware type 1, protocol
// 0x0800) with sender and target hardware address = MAC and both protocol
// addresses 0.0.0.0, broadcast from MAC with EtherType 0x8035. Frame format
// as for GratuitousARP. a.Addrs is not used.
func RARP(a Announcement) ([]byte, error) {
	if err := a.validateLink(); err != nil {
		return nil, err
	}
	p, err := arp.NewPacket(opReverseRequest, a.MAC, netip.IPv4Unspecified(), a.MAC, netip.IPv4Unspecified())
	if err != nil {
		return nil, fmt.Errorf("rarp for %s: %w", a.MAC, err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("rarp for %s: %w", a.MAC, err)
	}
	return frame(a, ethernet.Broadcast, etherTypeRARP, payload)
}

// Frames builds the whole per-MAC burst of a: one gratuitous ARP per IPv4
// address and one unsolicited NA per IPv6 address, in the order of a.Addrs
// (an address given twice, also as IPv4 and IPv4-mapped, is announced once),
// or a single RARP frame when a.Addrs is empty. It validates a first and
// returns only the error if a is invalid.
func Frames(a Announcement) ([][]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if len(a.Addrs) == 0 {
		f, err := RARP(a)
		if err != nil {
			return nil, err
		}
		return [][]byte{f}, nil
	}
	frames := make([][]byte, 0, len(a.Addrs))
	for i, ip := range a.Addrs {
		ip = ip.Unmap().WithZone("")
		if seenBefore(a.Addrs[:i], ip) {
			continue
		}
		var (
			f   []byte
			err error
		)
		if ip.Is4() {
			f, err = GratuitousARP(a, ip)
		} else {
			f, err = UnsolicitedNA(a, ip)
		}
		if err != nil {
			return nil, err
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// seenBefore reports whether ip (unmapped, without zone) is among addrs.
// Announcements carry a handful of addresses, so a scan beats a map.
func seenBefore(addrs []netip.Addr, ip netip.Addr) bool {
	for _, prev := range addrs {
		if prev.Unmap().WithZone("") == ip {
			return true
		}
	}
	return false
}

// frame wraps payload in an Ethernet II header from a.MAC to dst, tagged per
// IEEE 802.1Q when a.VLAN or a.Priority is non-zero (TPID 0x8100, DEI 0).
func frame(a Announcement, dst net.HardwareAddr, et ethernet.EtherType, payload []byte) ([]byte, error) {
	f := ethernet.Frame{
		Destination: dst,
		Source:      a.MAC,
		EtherType:   et,
		Payload:     payload,
	}
	if a.VLAN != 0 || a.Priority != 0 {
		f.VLAN = &ethernet.VLAN{Priority: ethernet.Priority(a.Priority), ID: uint16(a.VLAN)}
	}
	b, err := f.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("ethernet frame from %s vlan %d: %w", a.MAC, a.VLAN, err)
	}
	return b, nil
}

// icmpv6Checksum is the Internet checksum (RFC 1071) of the IPv6
// pseudo-header (RFC 8200 §8.1: source, destination, upper-layer length,
// three zero bytes, next header 58) followed by msg, whose checksum field
// must be zero.
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += uint32(len(msg)) >> 16
	sum += uint32(len(msg)) & 0xffff
	sum += protoICMPv6
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
