package announce_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vflag/vflag/announce"
	"github.com/vflag/vflag/internal/privtest"
)

// burst512 is 512 VMs with one IPv4 address each: one gratuitous ARP per
// MAC and round.
func burst512() []announce.Announcement {
	anns := make([]announce.Announcement, 512)
	for i := range anns {
		anns[i] = announce.Announcement{
			MAC:   net.HardwareAddr{0x52, 0x54, 0x00, 0xbe, byte(i >> 8), byte(i)},
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})},
		}
	}
	return anns
}

// BenchmarkBurst512 measures one failover burst on a veth: 512 MACs × 3
// rounds back to back (the pause between rounds is replaced by a no-op) =
// 1536 frames through AF_PACKET, including building and validation. The
// target is ≤ 5 ms per burst.
func BenchmarkBurst512(b *testing.B) {
	privtest.Root(b)
	p := newVethPair(b)
	sender := newSender(b, p.sendPath)
	an := announce.Announcer{
		Sender: sender,
		Count:  3,
		Sleep:  func(context.Context, time.Duration) error { return nil },
	}
	anns := burst512()
	ctx := b.Context()
	// Open the socket before the measured loop (b.Loop resets the timer).
	if _, err := an.Announce(ctx, p.sendIf, anns[:1]); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sent, err := an.Announce(ctx, p.sendIf, anns)
		if err != nil || sent != 3*512 {
			b.Fatalf("Announce = %d, %v", sent, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(3*512), "ns/frame")
}

// BenchmarkFrames512 measures building the frames of the same 512 MACs,
// one round's worth, with no I/O.
func BenchmarkFrames512(b *testing.B) {
	anns := burst512()
	b.ReportAllocs()
	for b.Loop() {
		for _, a := range anns {
			if _, err := announce.Frames(a); err != nil {
				b.Fatal(err)
			}
		}
	}
}
