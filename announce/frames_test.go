package announce_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/vflag/vflag/announce"
)

// Test addresses: a QEMU-style locally assigned MAC, TEST-NET-1 (RFC 5737)
// and the IPv6 documentation prefix (RFC 3849).
var (
	vmMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	vmV4  = netip.MustParseAddr("192.0.2.10")
	vmV6  = netip.MustParseAddr("2001:db8::10")
)

// unhex decodes the golden frames below: hex digits with spaces, one field
// group per line, and // comments.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var digits strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		line, _, _ = strings.Cut(line, "//")
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("bad golden hex: %v", err)
	}
	return b
}

// The golden frames, written field by field from RFC 826/5227 (ARP), RFC
// 8200 + RFC 4861 §4.4/§4.6.1 (NA), RFC 903 (RARP), IEEE 802.1Q (tag
// 0x8100, TCI = PCP<<13 | VID: PCP 5 VID 100 = 0xa064) and IEEE 802.3
// (payload padded to 46 bytes). The NA checksum 0x7451 was computed
// outside Go with a separate RFC 1071 implementation; the test below also
// recomputes it with golang.org/x/net/icmp.
const (
	garpUntagged = `
		ffffffffffff 525400123456 0806  // broadcast, from the VM MAC, ARP
		0001 0800 06 04 0001            // Ethernet, IPv4, hlen 6, plen 4, request
		525400123456 c000020a           // sender: VM MAC, 192.0.2.10
		000000000000 c000020a           // target: zero MAC, 192.0.2.10
		000000000000000000000000000000000000 // 18 bytes padding`
	garpTagged = `
		ffffffffffff 525400123456
		8100 a064                       // 802.1Q: PCP 5, DEI 0, VID 100
		0806
		0001 0800 06 04 0001
		525400123456 c000020a
		000000000000 c000020a
		000000000000000000000000000000000000`
	naUntagged = `
		333300000001 525400123456 86dd  // all-nodes MAC, from the VM MAC, IPv6
		60000000 0020 3a ff             // v6, payload 32, ICMPv6, hop limit 255
		20010db8000000000000000000000010 // source 2001:db8::10
		ff020000000000000000000000000001 // destination ff02::1
		88 00 7451                      // NA (136), code 0, checksum
		20000000                        // R=0 S=0 O=1, reserved
		20010db8000000000000000000000010 // target 2001:db8::10
		02 01 525400123456              // option TLLA, 8 bytes, VM MAC`
	naTagged = `
		333300000001 525400123456
		8100 a064
		86dd
		60000000 0020 3a ff
		20010db8000000000000000000000010
		ff020000000000000000000000000001
		88 00 7451 20000000
		20010db8000000000000000000000010
		02 01 525400123456`
	rarpUntagged = `
		ffffffffffff 525400123456 8035  // broadcast, from the VM MAC, RARP
		0001 0800 06 04 0003            // Ethernet, IPv4, hlen 6, plen 4, reverse request
		525400123456 00000000           // sender: VM MAC, 0.0.0.0
		525400123456 00000000           // target: VM MAC, 0.0.0.0
		000000000000000000000000000000000000`
	rarpTagged = `
		ffffffffffff 525400123456
		8100 a064
		8035
		0001 0800 06 04 0003
		525400123456 00000000
		525400123456 00000000
		000000000000000000000000000000000000`
	rarpPriorityTagged = `
		ffffffffffff 525400123456
		8100 a000                       // priority tag: PCP 5, VID 0
		8035
		0001 0800 06 04 0003
		525400123456 00000000
		525400123456 00000000
		000000000000000000000000000000000000`
)

func TestFrameGolden(t *testing.T) {
	untagged := announce.Announcement{MAC: vmMAC}
	tagged := announce.Announcement{MAC: vmMAC, VLAN: 100, Priority: 5}
	prioOnly := announce.Announcement{MAC: vmMAC, Priority: 5}
	tests := []struct {
		name  string
		build func() ([]byte, error)
		want  string
		len   int
	}{
		{"garp untagged", func() ([]byte, error) { return announce.GratuitousARP(untagged, vmV4) }, garpUntagged, 60},
		{"garp vlan 100 pcp 5", func() ([]byte, error) { return announce.GratuitousARP(tagged, vmV4) }, garpTagged, 64},
		{"garp from mapped v4", func() ([]byte, error) {
			return announce.GratuitousARP(untagged, netip.AddrFrom16(vmV4.As16()))
		}, garpUntagged, 60},
		{"na untagged", func() ([]byte, error) { return announce.UnsolicitedNA(untagged, vmV6) }, naUntagged, 86},
		{"na vlan 100 pcp 5", func() ([]byte, error) { return announce.UnsolicitedNA(tagged, vmV6) }, naTagged, 90},
		{"na zone ignored", func() ([]byte, error) { return announce.UnsolicitedNA(untagged, vmV6.WithZone("eth0")) }, naUntagged, 86},
		{"rarp untagged", func() ([]byte, error) { return announce.RARP(untagged) }, rarpUntagged, 60},
		{"rarp vlan 100 pcp 5", func() ([]byte, error) { return announce.RARP(tagged) }, rarpTagged, 64},
		{"rarp priority tag only", func() ([]byte, error) { return announce.RARP(prioOnly) }, rarpPriorityTagged, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			want := unhex(t, tt.want)
			if len(want) != tt.len {
				t.Fatalf("golden frame is %d bytes, the layout says %d", len(want), tt.len)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("frame differs\n got %x\nwant %x", got, want)
			}
		})
	}
}

// TestNAChecksum recomputes the ICMPv6 checksum of built NAs with
// golang.org/x/net/icmp and checks the RFC 1071 property that the sum over
// pseudo-header and message, checksum included, is 0xffff.
func TestNAChecksum(t *testing.T) {
	tests := []struct {
		name string
		a    announce.Announcement
		ip   netip.Addr
	}{
		{"global", announce.Announcement{MAC: vmMAC}, vmV6},
		{"link-local tagged", announce.Announcement{MAC: vmMAC, VLAN: 4094, Priority: 7}, netip.MustParseAddr("fe80::5054:ff:fe12:3456")},
		{"other mac", announce.Announcement{MAC: net.HardwareAddr{0x02, 0xff, 0xff, 0xff, 0xff, 0xfe}}, netip.MustParseAddr("2001:db8:ffff::ffff")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := announce.UnsolicitedNA(tt.a, tt.ip)
			if err != nil {
				t.Fatal(err)
			}
			l3 := f[14:]
			if tt.a.VLAN != 0 || tt.a.Priority != 0 {
				l3 = f[18:]
			}
			h, err := ipv6.ParseHeader(l3)
			if err != nil {
				t.Fatal(err)
			}
			if h.NextHeader != 58 || h.HopLimit != 255 || h.PayloadLen != 32 ||
				!h.Src.Equal(net.IP(tt.ip.AsSlice())) || !h.Dst.Equal(net.ParseIP("ff02::1")) {
				t.Fatalf("ipv6 header %+v", h)
			}
			msg := l3[40 : 40+h.PayloadLen]
			m, err := icmp.ParseMessage(58, msg)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != ipv6.ICMPTypeNeighborAdvertisement || m.Code != 0 {
				t.Fatalf("icmp type %v code %d", m.Type, m.Code)
			}
			m.Checksum = 0
			again, err := m.Marshal(icmp.IPv6PseudoHeader(h.Src, h.Dst))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, msg) {
				t.Errorf("x/net/icmp computes checksum %#04x, frame has %#04x", binary.BigEndian.Uint16(again[2:]), binary.BigEndian.Uint16(msg[2:]))
			}
			var sum uint32
			// RFC 8200 §8.1: source, destination, 32-bit length, 3 zero
			// bytes, next header.
			pseudo := append(append([]byte{}, h.Src...), h.Dst...)
			pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(msg)))
			pseudo = append(pseudo, 0, 0, 0, 58)
			pseudo = append(pseudo, msg...)
			for i := 0; i < len(pseudo); i += 2 {
				sum += uint32(binary.BigEndian.Uint16(pseudo[i:]))
			}
			for sum > 0xffff {
				sum = sum>>16 + sum&0xffff
			}
			if sum != 0xffff {
				t.Errorf("one's-complement sum over pseudo-header and message is %#04x, want 0xffff", sum)
			}
		})
	}
}

func TestBuilderErrors(t *testing.T) {
	ok := announce.Announcement{MAC: vmMAC}
	tests := []struct {
		name  string
		build func() ([]byte, error)
		want  string
	}{
		{"garp with ipv6", func() ([]byte, error) { return announce.GratuitousARP(ok, vmV6) }, "not an IPv4 address"},
		{"garp with zero addr", func() ([]byte, error) { return announce.GratuitousARP(ok, netip.Addr{}) }, "zero netip.Addr"},
		{"na with ipv4", func() ([]byte, error) { return announce.UnsolicitedNA(ok, vmV4) }, "not an IPv6 address"},
		{"na with mapped ipv4", func() ([]byte, error) { return announce.UnsolicitedNA(ok, netip.AddrFrom16(vmV4.As16())) }, "not an IPv6 address"},
		{"na with multicast", func() ([]byte, error) { return announce.UnsolicitedNA(ok, netip.MustParseAddr("ff02::1")) }, "multicast"},
		{"rarp with bad vlan", func() ([]byte, error) { return announce.RARP(announce.Announcement{MAC: vmMAC, VLAN: 4095}) }, "vlan 4095"},
		{"garp with short mac", func() ([]byte, error) {
			return announce.GratuitousARP(announce.Announcement{MAC: vmMAC[:5]}, vmV4)
		}, "not a 48-bit MAC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.build()
			if err == nil || !errors.Is(err, announce.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			if f != nil {
				t.Errorf("frame %x returned with the error", f)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	v4 := []netip.Addr{vmV4}
	tests := []struct {
		name string
		a    announce.Announcement
		want string // "" = valid; else a substring of the error
	}{
		{"v4 and v6", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{vmV4, vmV6}}, ""},
		{"no addresses", announce.Announcement{MAC: vmMAC}, ""},
		{"highest vlan and priority", announce.Announcement{MAC: vmMAC, VLAN: 4094, Priority: 7, Addrs: v4}, ""},
		{"priority without vlan", announce.Announcement{MAC: vmMAC, Priority: 3}, ""},
		{"ipv4-mapped is normalised", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.AddrFrom16(vmV4.As16())}}, ""},
		{"zoned link-local", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}}, ""},
		{"nil mac", announce.Announcement{}, "not a 48-bit MAC"},
		{"eui-64", announce.Announcement{MAC: net.HardwareAddr{0x52, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x56}}, "not a 48-bit MAC"},
		{"multicast mac", announce.Announcement{MAC: net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1}}, "01:00:5e:00:00:01: multicast MAC"},
		{"broadcast mac", announce.Announcement{MAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, "multicast MAC"},
		{"zero mac", announce.Announcement{MAC: make(net.HardwareAddr, 6)}, "zero MAC"},
		{"vlan -1", announce.Announcement{MAC: vmMAC, VLAN: -1}, "52:54:00:12:34:56: vlan -1 out of range"},
		{"vlan 4095", announce.Announcement{MAC: vmMAC, VLAN: 4095}, "vlan 4095 out of range"},
		{"priority 8", announce.Announcement{MAC: vmMAC, Priority: 8}, "priority 8 out of range"},
		{"priority -1", announce.Announcement{MAC: vmMAC, Priority: -1}, "priority -1 out of range"},
		{"zero addr", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{{}}}, "52:54:00:12:34:56: zero netip.Addr"},
		{"0.0.0.0", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.IPv4Unspecified()}}, "unspecified"},
		{"::", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.IPv6Unspecified()}}, "unspecified"},
		{"v4 multicast", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.MustParseAddr("224.0.0.1")}}, "multicast"},
		{"mapped v4 multicast", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.MustParseAddr("::ffff:224.0.0.1")}}, "224.0.0.1 is multicast"},
		{"v6 multicast", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.MustParseAddr("ff02::1")}}, "multicast"},
		{"v4 loopback", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, "loopback"},
		{"v6 loopback", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.IPv6Loopback()}}, "loopback"},
		{"limited broadcast", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{netip.MustParseAddr("255.255.255.255")}}, "broadcast"},
		{"bad address after good", announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{vmV4, netip.MustParseAddr("224.0.0.5")}}, "224.0.0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.a.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want == "":
				return
			case err == nil:
				t.Fatalf("Validate accepted %+v, want error with %q", tt.a, tt.want)
			case !errors.Is(err, announce.ErrInvalid):
				t.Errorf("error %v does not wrap ErrInvalid", err)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if _, ferr := announce.Frames(tt.a); ferr == nil {
				t.Errorf("Frames accepted an announcement Validate rejects")
			}
		})
	}
}

// describe renders a frame as text, decoding it by hand (not with the
// package under test), for comparisons of whole bursts.
func describe(f []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s>%s", net.HardwareAddr(f[6:12]), net.HardwareAddr(f[0:6]))
	et, p := binary.BigEndian.Uint16(f[12:]), f[14:]
	if et == 0x8100 {
		tci := binary.BigEndian.Uint16(f[14:])
		fmt.Fprintf(&b, " vlan %d pcp %d", tci&0xfff, tci>>13)
		et, p = binary.BigEndian.Uint16(f[16:]), f[18:]
	}
	switch et {
	case 0x0806:
		spa, _ := netip.AddrFromSlice(p[14:18])
		tpa, _ := netip.AddrFromSlice(p[24:28])
		fmt.Fprintf(&b, " arp op %d sha %s spa %s tha %s tpa %s", binary.BigEndian.Uint16(p[6:]), net.HardwareAddr(p[8:14]), spa, net.HardwareAddr(p[18:24]), tpa)
	case 0x86dd:
		src, _ := netip.AddrFromSlice(p[8:24])
		dst, _ := netip.AddrFromSlice(p[24:40])
		tgt, _ := netip.AddrFromSlice(p[48:64])
		fmt.Fprintf(&b, " ipv6 %s>%s icmp %d flags %#02x target %s tlla %s", src, dst, p[40], p[44], tgt, net.HardwareAddr(p[66:72]))
	case 0x8035:
		fmt.Fprintf(&b, " rarp op %d sha %s tha %s", binary.BigEndian.Uint16(p[6:]), net.HardwareAddr(p[8:14]), net.HardwareAddr(p[18:24]))
	default:
		fmt.Fprintf(&b, " ethertype %#04x", et)
	}
	fmt.Fprintf(&b, " len %d", len(f))
	return b.String()
}

func TestFrames(t *testing.T) {
	v4b := netip.MustParseAddr("198.51.100.7")
	tests := []struct {
		name string
		a    announce.Announcement
		want []string
	}{
		{
			name: "no addresses: rarp",
			a:    announce.Announcement{MAC: vmMAC},
			want: []string{"52:54:00:12:34:56>ff:ff:ff:ff:ff:ff rarp op 3 sha 52:54:00:12:34:56 tha 52:54:00:12:34:56 len 60"},
		},
		{
			name: "one garp per ipv4, one na per ipv6, in order",
			a:    announce.Announcement{MAC: vmMAC, VLAN: 100, Priority: 5, Addrs: []netip.Addr{vmV4, vmV6, v4b}},
			want: []string{
				"52:54:00:12:34:56>ff:ff:ff:ff:ff:ff vlan 100 pcp 5 arp op 1 sha 52:54:00:12:34:56 spa 192.0.2.10 tha 00:00:00:00:00:00 tpa 192.0.2.10 len 64",
				"52:54:00:12:34:56>33:33:00:00:00:01 vlan 100 pcp 5 ipv6 2001:db8::10>ff02::1 icmp 136 flags 0x20 target 2001:db8::10 tlla 52:54:00:12:34:56 len 90",
				"52:54:00:12:34:56>ff:ff:ff:ff:ff:ff vlan 100 pcp 5 arp op 1 sha 52:54:00:12:34:56 spa 198.51.100.7 tha 00:00:00:00:00:00 tpa 198.51.100.7 len 64",
			},
		},
		{
			name: "duplicates and mapped forms announced once",
			a:    announce.Announcement{MAC: vmMAC, Addrs: []netip.Addr{vmV4, netip.AddrFrom16(vmV4.As16()), vmV6, vmV6.WithZone("eth0"), vmV4}},
			want: []string{
				"52:54:00:12:34:56>ff:ff:ff:ff:ff:ff arp op 1 sha 52:54:00:12:34:56 spa 192.0.2.10 tha 00:00:00:00:00:00 tpa 192.0.2.10 len 60",
				"52:54:00:12:34:56>33:33:00:00:00:01 ipv6 2001:db8::10>ff02::1 icmp 136 flags 0x20 target 2001:db8::10 tlla 52:54:00:12:34:56 len 86",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frames, err := announce.Frames(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range frames {
				got = append(got, describe(f))
			}
			if g, w := strings.Join(got, "\n"), strings.Join(tt.want, "\n"); g != w {
				t.Errorf("frames:\n%s\nwant:\n%s", g, w)
			}
		})
	}
}
