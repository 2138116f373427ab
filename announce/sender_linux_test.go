package announce_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vflag/vflag/announce"
	"github.com/vflag/vflag/internal/nsrun"
	"github.com/vflag/vflag/internal/privtest"
)

// Privileged tier: every test builds two fresh namespaces joined by a veth
// pair, sends from one end and reads on the other. Nothing touches the root
// namespace.

// vethPair is a veth pair whose ends live in two fresh namespaces.
type vethPair struct {
	sendNS, sendPath, sendIf string
	recvNS, recvPath, recvIf string
}

func newVethPair(t testing.TB) vethPair {
	t.Helper()
	p := vethPair{sendIf: "va", recvIf: "vb"}
	p.sendNS, p.sendPath = privtest.Netns(t)
	p.recvNS, p.recvPath = privtest.Netns(t)
	p.create(t)
	return p
}

// create adds the pair inside sendNS, with the peer moved straight into
// recvNS, and sets both ends up.
func (p vethPair) create(t testing.TB) {
	t.Helper()
	ip(t, "-n", p.sendNS, "link", "add", p.sendIf, "type", "veth", "peer", "name", p.recvIf, "netns", p.recvNS)
	ip(t, "-n", p.sendNS, "link", "set", p.sendIf, "up")
	ip(t, "-n", p.recvNS, "link", "set", p.recvIf, "up")
}

func ip(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// receiver is an AF_PACKET socket that sees every frame on one interface.
//
// veth hands received frames to the stack with the 802.1Q tag already
// removed into skb metadata: __netif_receive_skb_core (net/core/dev.c)
// untags every VLAN frame before packet sockets see it, whatever the
// interface's rx-vlan-offload setting, so turning that offload off with
// ethtool does not bring the tag back into the data. The receiver therefore
// asks for PACKET_AUXDATA (packet(7)) and re-inserts the tag from
// tp_vlan_tci/tp_vlan_tpid, as libpcap does.
type receiver struct {
	fd int
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func listen(t testing.TB, nsPath, ifname string) *receiver {
	t.Helper()
	r := &receiver{fd: -1}
	err := nsrun.Do(nsPath, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		r.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if r.fd >= 0 {
		t.Cleanup(func() { _ = unix.Close(r.fd) })
	}
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", ifname, nsPath, err)
	}
	return r
}

// read returns the next frame that arrived on the interface (not one it
// sent), with its VLAN tag restored; nil after a 200 ms silence.
func (r *receiver) read(t testing.TB) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for {
		n, oobn, _, from, err := unix.Recvmsg(r.fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil
		}
		if err != nil {
			t.Fatalf("recvmsg: %v", err)
		}
		if sll, ok := from.(*unix.SockaddrLinklayer); ok && sll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		f := append([]byte(nil), buf[:n]...)
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatalf("parse control messages: %v", err)
		}
		for _, c := range cmsgs {
			if c.Header.Level != unix.SOL_PACKET || c.Header.Type != unix.PACKET_AUXDATA || len(c.Data) < 20 {
				continue
			}
			// struct tpacket_auxdata: status, len, snaplen (u32), mac, net,
			// vlan_tci, vlan_tpid (u16).
			status := binary.NativeEndian.Uint32(c.Data[0:])
			tci := binary.NativeEndian.Uint16(c.Data[16:])
			tpid := binary.NativeEndian.Uint16(c.Data[18:])
			if status&unix.TP_STATUS_VLAN_VALID == 0 {
				continue
			}
			if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
				tpid = unix.ETH_P_8021Q
			}
			var tag [4]byte
			binary.BigEndian.PutUint16(tag[0:], tpid)
			binary.BigEndian.PutUint16(tag[2:], tci)
			f = append(f[:12], append(tag[:], f[12:]...)...)
		}
		return f
	}
}

// collect reads until 200 ms pass without a frame and returns the frames
// whose Ethernet source is one of macs.
func (r *receiver) collect(t testing.TB, macs ...net.HardwareAddr) [][]byte {
	t.Helper()
	var got [][]byte
	for {
		f := r.read(t)
		if f == nil {
			return got
		}
		for _, m := range macs {
			if bytes.Equal(f[6:12], m) {
				got = append(got, f)
				break
			}
		}
	}
}

// newSender returns a PacketSender for the namespace at nsPath, closed when
// the test ends.
func newSender(t testing.TB, nsPath string) *announce.PacketSender {
	t.Helper()
	s := &announce.PacketSender{Netns: nsPath}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sender: %v", err)
		}
	})
	return s
}

func TestPacketSenderOverVeth(t *testing.T) {
	privtest.Root(t)
	p := newVethPair(t)
	rcv := listen(t, p.recvPath, p.recvIf)
	sender := newSender(t, p.sendPath)

	mac2 := net.HardwareAddr{0x52, 0x54, 0x00, 0x65, 0x43, 0x21}
	tests := []struct {
		name string
		anns []announce.Announcement
	}{
		{"untagged", []announce.Announcement{
			{MAC: vmMAC, Addrs: []netip.Addr{vmV4, vmV6}},
			{MAC: mac2},
		}},
		{"vlan 100 pcp 5", []announce.Announcement{
			{MAC: vmMAC, VLAN: 100, Priority: 5, Addrs: []netip.Addr{vmV4, vmV6}},
			{MAC: mac2, VLAN: 100, Priority: 5},
		}},
		{"priority tag vlan 0", []announce.Announcement{
			{MAC: vmMAC, Priority: 3, Addrs: []netip.Addr{vmV4, vmV6}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent [][]byte
			for _, a := range tt.anns {
				frames, err := announce.Frames(a)
				if err != nil {
					t.Fatal(err)
				}
				if err := sender.Send(t.Context(), p.sendIf, frames); err != nil {
					t.Fatalf("send: %v", err)
				}
				sent = append(sent, frames...)
			}
			got := rcv.collect(t, vmMAC, mac2)
			if len(got) != len(sent) {
				t.Fatalf("received %d frames from the VM MACs, sent %d", len(got), len(sent))
			}
			for i := range sent {
				if !bytes.Equal(got[i], sent[i]) {
					t.Errorf("frame %d differs\nsent %x\n got %x", i, sent[i], got[i])
				}
			}
		})
	}
}

// TestAnnouncerOverVeth runs the whole stack: an Announcer with a
// PacketSender sends two rounds, and the peer sees each frame twice.
func TestAnnouncerOverVeth(t *testing.T) {
	privtest.Root(t)
	p := newVethPair(t)
	rcv := listen(t, p.recvPath, p.recvIf)
	sender := newSender(t, p.sendPath)

	a := announce.Announcement{MAC: vmMAC, VLAN: 100, Addrs: []netip.Addr{vmV4, vmV6}}
	an := announce.Announcer{Sender: sender, Count: 2, Interval: 10 * time.Millisecond}
	sent, err := an.Announce(t.Context(), p.sendIf, []announce.Announcement{a})
	if err != nil || sent != 4 {
		t.Fatalf("Announce = %d, %v; want 4, nil", sent, err)
	}
	frames, err := announce.Frames(a)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([][]byte{}, frames...), frames...)
	got := rcv.collect(t, vmMAC)
	if len(got) != len(want) {
		t.Fatalf("received %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d differs\nwant %x\n got %x", i, want[i], got[i])
		}
	}
}

// TestPacketSenderRecreatedInterface: after the interface is deleted and
// created again under the same name, the cached socket is replaced and
// frames flow again.
func TestPacketSenderRecreatedInterface(t *testing.T) {
	privtest.Root(t)
	p := newVethPair(t)
	sender := newSender(t, p.sendPath)
	frames, err := announce.Frames(announce.Announcement{MAC: vmMAC})
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.Send(t.Context(), p.sendIf, frames); err != nil {
		t.Fatalf("first send: %v", err)
	}
	ip(t, "-n", p.sendNS, "link", "del", p.sendIf)
	p.create(t)
	rcv := listen(t, p.recvPath, p.recvIf)
	if err := sender.Send(t.Context(), p.sendIf, frames); err != nil {
		t.Fatalf("send after the interface was recreated: %v", err)
	}
	if got := rcv.collect(t, vmMAC); len(got) != 1 || !bytes.Equal(got[0], frames[0]) {
		t.Errorf("received %x, want one %x", got, frames[0])
	}
}

func TestPacketSenderErrors(t *testing.T) {
	privtest.Root(t)
	p := newVethPair(t)
	frames, err := announce.Frames(announce.Announcement{MAC: vmMAC})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		send   func(s *announce.PacketSender) error
		wantIn string
	}{
		{"no such interface", func(s *announce.PacketSender) error {
			return s.Send(t.Context(), "nosuch0", frames)
		}, "open packet socket on nosuch0"},
		{"interface down", func(s *announce.PacketSender) error {
			ip(t, "-n", p.sendNS, "link", "set", p.sendIf, "down")
			defer ip(t, "-n", p.sendNS, "link", "set", p.sendIf, "up")
			return s.Send(t.Context(), p.sendIf, frames)
		}, "send frame 0 on va"},
		{"runt frame", func(s *announce.PacketSender) error {
			return s.Send(t.Context(), p.sendIf, [][]byte{frames[0], frames[0][:13]})
		}, "frame 1 is 13 bytes"},
		{"after close", func(s *announce.PacketSender) error {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return s.Send(t.Context(), p.sendIf, frames)
		}, "send on va: packet sender closed"},
		{"context already cancelled", func(s *announce.PacketSender) error {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := s.Send(ctx, p.sendIf, frames)
			if se, ok := errors.AsType[*announce.SendError](err); !ok || se.Sent != 0 || !errors.Is(err, context.Canceled) {
				t.Errorf("err = %#v, want a SendError with Sent 0 wrapping context.Canceled", err)
			}
			return err
		}, "send frame 0 on va: context canceled"},
		{"bad namespace path", func(*announce.PacketSender) error {
			s := &announce.PacketSender{Netns: "/var/run/netns/" + privtest.NetnsPrefix + "missing"}
			return s.Send(t.Context(), p.sendIf, frames)
		}, "open network namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSender(t, p.sendPath)
			err := tt.send(s)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantIn)
			}
		})
	}
}

// TestPacketSenderCancelWhileBlocked stalls the interface's queue (a token
// bucket at 8 kbit/s that queues instead of dropping), so that the socket's
// send buffer fills and sendmmsg would block, and checks that the deadline of
// ctx ends Send with an exact count of what went out.
func TestPacketSenderCancelWhileBlocked(t *testing.T) {
	privtest.Root(t)
	p := newVethPair(t)
	if out, err := exec.Command("tc", "-n", p.sendNS, "qdisc", "add", "dev", p.sendIf, "root",
		"tbf", "rate", "8kbit", "burst", "1600", "limit", "10000000").CombinedOutput(); err != nil {
		t.Skipf("no tbf qdisc to stall the queue with: %v: %s", err, out)
	}
	frames, err := announce.Frames(announce.Announcement{MAC: vmMAC})
	if err != nil {
		t.Fatal(err)
	}
	// Far more than a default send buffer (net.core.wmem_default) holds.
	many := make([][]byte, 20000)
	for i := range many {
		many[i] = frames[0]
	}
	s := newSender(t, p.sendPath)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = s.Send(ctx, p.sendIf, many)
	se, ok := errors.AsType[*announce.SendError](err)
	if !ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a SendError wrapping context.DeadlineExceeded", err)
	}
	if se.Sent <= 0 || se.Sent >= len(many) {
		t.Errorf("Sent = %d, want some but not all of %d", se.Sent, len(many))
	}
	t.Logf("sent %d frames before the deadline: %v", se.Sent, err)
}

// TestPacketSenderConcurrent sends from several goroutines through one
// PacketSender; every frame arrives once.
func TestPacketSenderConcurrent(t *testing.T) {
	privtest.Root(t)
	p := newVethPair(t)
	rcv := listen(t, p.recvPath, p.recvIf)
	s := newSender(t, p.sendPath)
	const workers = 4
	var macs []net.HardwareAddr
	errs := make(chan error, workers)
	for w := range workers {
		mac := net.HardwareAddr{0x52, 0x54, 0x00, 0xcc, 0x00, byte(w)}
		macs = append(macs, mac)
		frames, err := announce.Frames(announce.Announcement{MAC: mac, Addrs: []netip.Addr{vmV4, vmV6}})
		if err != nil {
			t.Fatal(err)
		}
		go func() { errs <- s.Send(t.Context(), p.sendIf, frames) }()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	perMAC := map[string]int{}
	for _, f := range rcv.collect(t, macs...) {
		perMAC[net.HardwareAddr(f[6:12]).String()]++
	}
	for _, m := range macs {
		if perMAC[m.String()] != 2 {
			t.Errorf("received %d frames from %s, want 2", perMAC[m.String()], m)
		}
	}
}

// TestAnnouncementUpdatesNeighbours: a host on the segment with stale
// neighbour entries for the VM's addresses (pointing at an old MAC) moves
// them to the announced MAC on a gratuitous ARP (RFC 5227 §3; Linux
// arp_process overrides for a GARP) and on an unsolicited NA with O=1
// (RFC 4861 §7.2.5; the kernel also checks hop limit and ICMPv6 checksum).
func TestAnnouncementUpdatesNeighbours(t *testing.T) {
	privtest.Root(t)
	p := newVethPair(t)
	ip(t, "-n", p.recvNS, "addr", "add", "192.0.2.1/24", "dev", p.recvIf)
	ip(t, "-n", p.recvNS, "addr", "add", "2001:db8::1/64", "dev", p.recvIf, "nodad")
	const oldMAC = "02:00:00:00:00:99"
	ip(t, "-n", p.recvNS, "neigh", "replace", vmV4.String(), "lladdr", oldMAC, "dev", p.recvIf, "nud", "stale")
	ip(t, "-n", p.recvNS, "neigh", "replace", vmV6.String(), "lladdr", oldMAC, "dev", p.recvIf, "nud", "stale")

	sender := newSender(t, p.sendPath)
	an := announce.Announcer{Sender: sender, Count: 1}
	if _, err := an.Announce(t.Context(), p.sendIf, []announce.Announcement{{MAC: vmMAC, Addrs: []netip.Addr{vmV4, vmV6}}}); err != nil {
		t.Fatal(err)
	}

	for _, addr := range []netip.Addr{vmV4, vmV6} {
		var out string
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			out = ip(t, "-n", p.recvNS, "neigh", "show", addr.String(), "dev", p.recvIf)
			if strings.Contains(out, "lladdr "+vmMAC.String()) {
				break
			}
		}
		if !strings.Contains(out, "lladdr "+vmMAC.String()) {
			t.Errorf("neighbour entry for %s after the announcement: %q, want lladdr %s", addr, strings.TrimSpace(out), vmMAC)
		}
	}
}
