package announce_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vflag/vflag/announce"
)

// After a failover to pf1, announce two VMs: one with known addresses on VLAN
// 100, one whose addresses are unknown (it gets a RARP frame).
func Example() {
	sender := &announce.PacketSender{} // current netns; set Netns to use another
	defer func() {
		if err := sender.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	an := announce.Announcer{
		Sender:   sender,
		Count:    3,                      // like bonding's num_grat_arp
		Interval: 100 * time.Millisecond, // like peer_notif_delay
		Log:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	anns := []announce.Announcement{
		{
			MAC:      net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
			VLAN:     100,
			Priority: 5,
			Addrs:    []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		},
		{MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x65, 0x43, 0x21}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sent, err := an.Announce(ctx, "pf1", anns)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	fmt.Println("frames sent:", sent)
}

func ExampleFrames() {
	frames, err := announce.Frames(announce.Announcement{
		MAC:   net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
		VLAN:  100,
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range frames {
		fmt.Printf("%d bytes: dst %s src %s tag %x ethertype %x\n", len(f), net.HardwareAddr(f[0:6]), net.HardwareAddr(f[6:12]), f[12:16], f[16:18])
	}
	// Output:
	// 64 bytes: dst ff:ff:ff:ff:ff:ff src 52:54:00:12:34:56 tag 81000064 ethertype 0806
	// 90 bytes: dst 33:33:00:00:00:01 src 52:54:00:12:34:56 tag 81000064 ethertype 86dd
}

func ExampleAnnouncement_Validate() {
	a := announce.Announcement{MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, VLAN: 4095}
	fmt.Println(a.Validate())
	// Output:
	// announcement for 52:54:00:12:34:56: vlan 4095 out of range 0..4094: invalid announcement
}
