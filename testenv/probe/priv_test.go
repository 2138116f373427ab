package probe

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vflag/vflag/internal/privtest"
)

// Privileged tier: every test builds its own namespaces with privtest.Netns
// and never touches the caller's namespace. Links are created through
// netlink handles bound to those namespaces.

// nsHandle opens a netlink handle in the namespace at path.
func nsHandle(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open namespace %s: %v", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", path, err)
	}
	t.Cleanup(h.Close)
	return h
}

// vethPair creates veth name in h's namespace with its peer peerName (MAC
// peerMAC, if set) in the namespace at peerPath.
func vethPair(t *testing.T, h *netlink.Handle, name, peerPath, peerName string, peerMAC net.HardwareAddr) {
	t.Helper()
	peerNs, err := netns.GetFromPath(peerPath)
	if err != nil {
		t.Fatalf("open namespace %s: %v", peerPath, err)
	}
	defer peerNs.Close()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: name},
		PeerName:         peerName,
		PeerHardwareAddr: peerMAC,
		PeerNamespace:    netlink.NsFd(peerNs),
	}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s (peer %s in %s): %v", name, peerName, peerPath, err)
	}
}

// link returns the link called name in h's namespace.
func link(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("find link %s: %v", name, err)
	}
	return l
}

// setUp gives the link an address (if cidr is not "") and sets it up.
func setUp(t *testing.T, h *netlink.Handle, name, cidr string) {
	t.Helper()
	l := link(t, h, name)
	if cidr != "" {
		addr, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.AddrAdd(l, addr); err != nil {
			t.Fatalf("add %s to %s: %v", cidr, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("set %s up: %v", name, err)
	}
}

// waitOperUp waits until the link's operational state is up: until then
// the kernel may still drop its packets (its qdisc is activated with the
// carrier, by linkwatch).
func waitOperUp(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		state := link(t, h, name).Attrs().OperState
		if state == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %s is %s, not up, after 5 s", name, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// twoHosts builds namespaces A and B joined by a veth pair, veth-a with
// 198.18.0.1/24 in A and veth-b with 198.18.0.2/24 in B, and returns the
// path of A and a handle in B.
func twoHosts(t *testing.T) (pathA string, hB *netlink.Handle) {
	t.Helper()
	_, pathA = privtest.Netns(t)
	_, pathB := privtest.Netns(t)
	hA := nsHandle(t, pathA)
	hB = nsHandle(t, pathB)
	vethPair(t, hA, "veth-a", pathB, "veth-b", nil)
	setUp(t, hA, "veth-a", "198.18.0.1/24")
	setUp(t, hB, "veth-b", "198.18.0.2/24")
	waitOperUp(t, hA, "veth-a")
	waitOperUp(t, hB, "veth-b")
	return pathA, hB
}

func TestPingerPrivileged(t *testing.T) {
	privtest.Root(t)
	tests := []struct {
		name string
		// down is when the far end is set down; 0 leaves it up.
		down time.Duration
		// run is how long the pinger runs (after down, if set).
		run time.Duration
	}{
		{name: "far end up", run: 500 * time.Millisecond},
		{name: "far end set down midway", down: 300 * time.Millisecond, run: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pathA, hB := twoHosts(t)
			far := link(t, hB, "veth-b")
			p := &Pinger{Netns: pathA, Target: netip.MustParseAddr("198.18.0.2"), Interval: 10 * time.Millisecond}

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// The far end goes down between before and after.
			var before, after time.Time
			downErr := make(chan error, 1)
			go func() {
				defer cancel()
				if tt.down > 0 {
					time.Sleep(tt.down)
					before = time.Now()
					err := hB.LinkSetDown(far)
					after = time.Now()
					downErr <- err
				} else {
					downErr <- nil
				}
				time.Sleep(tt.run)
			}()
			samples, err := p.Run(ctx)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if err := <-downErr; err != nil {
				t.Fatalf("set veth-b down: %v", err)
			}

			var repliedBefore, lostBefore, repliedAfter, lostAfter int
			for _, s := range samples {
				switch {
				case tt.down == 0 || s.Sent.Before(before.Add(-2*p.Interval)):
					// Before the link went down; two intervals of margin
					// for a reply still in flight when it did.
					if s.Replied {
						repliedBefore++
					} else {
						lostBefore++
					}
				case s.Sent.After(after):
					if s.Replied {
						repliedAfter++
					} else {
						lostAfter++
					}
				}
				if s.Replied && s.RTT <= 0 {
					t.Errorf("probe %d replied with RTT %s", s.Seq, s.RTT)
				}
			}
			t.Logf("%d probes: before the fault %d replied, %d lost; after it %d replied, %d lost",
				len(samples), repliedBefore, lostBefore, repliedAfter, lostAfter)
			if repliedBefore == 0 || lostBefore != 0 {
				t.Errorf("while the link was up: %d replied, %d lost; want replies and no loss", repliedBefore, lostBefore)
			}
			if tt.down > 0 && (lostAfter == 0 || repliedAfter != 0) {
				t.Errorf("after the far end went down: %d replied, %d lost; want only losses", repliedAfter, lostAfter)
			}
		})
	}
}

func TestFDBWatcherPrivileged(t *testing.T) {
	privtest.Root(t)
	macA := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a}
	macB := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x0b}
	tests := []struct {
		name  string
		leave func(h *netlink.Handle, port netlink.Link) error
	}{
		{"port leaves the bridge", func(h *netlink.Handle, port netlink.Link) error { return h.LinkSetNoMaster(port) }},
		{"port deleted", func(h *netlink.Handle, port netlink.Link) error { return h.LinkDel(port) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// fabric holds bridge tora with ports pa (to host A) and pb
			// (to host B).
			_, fabric := privtest.Netns(t)
			_, pathA := privtest.Netns(t)
			_, pathB := privtest.Netns(t)
			hF, hA, hB := nsHandle(t, fabric), nsHandle(t, pathA), nsHandle(t, pathB)
			bridge := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "tora"}}
			if err := hF.LinkAdd(bridge); err != nil {
				t.Fatalf("add bridge tora: %v", err)
			}
			vethPair(t, hF, "pa", pathA, "eth0", macA)
			vethPair(t, hF, "pb", pathB, "eth0", macB)
			for _, port := range []string{"pa", "pb"} {
				if err := hF.LinkSetMaster(link(t, hF, port), link(t, hF, "tora")); err != nil {
					t.Fatalf("add %s to tora: %v", port, err)
				}
				setUp(t, hF, port, "")
			}
			setUp(t, hF, "tora", "")

			rec, err := FDBWatcher{Netns: fabric, MACs: []net.HardwareAddr{macA}}.Start(t.Context())
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Cleanup(func() { _ = rec.Stop() })

			setUp(t, hA, "eth0", "198.18.0.1/24")
			setUp(t, hB, "eth0", "198.18.0.2/24")
			waitOperUp(t, hA, "eth0")
			waitOperUp(t, hB, "eth0")
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			p := &Pinger{Netns: pathA, Target: netip.MustParseAddr("198.18.0.2"), Interval: 10 * time.Millisecond}
			if _, err := p.Run(ctx); err != nil {
				t.Fatalf("ping from A to B: %v", err)
			}

			learned := FDBEvent{Bridge: "tora", Port: "pa", MAC: macA.String()}
			waitFDBEvent(t, rec, learned)
			if err := tt.leave(hF, link(t, hF, "pa")); err != nil {
				t.Fatalf("take pa off tora: %v", err)
			}
			removed := FDBEvent{Bridge: "tora", Port: "pa", MAC: macA.String(), Deleted: true}
			waitFDBEvent(t, rec, removed)

			if err := rec.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			events := rec.Events()
			for i, ev := range events {
				if ev.MAC != macA.String() || ev.Bridge != "tora" || ev.Port != "pa" {
					t.Errorf("event %d = %+v: want only %s on tora port pa", i, ev, macA)
				}
				if i > 0 && ev.Time.Before(events[i-1].Time) {
					t.Errorf("event %d is older than event %d", i, i-1)
				}
			}
			moves := Timeline{Fault: events[0].Time, FDB: events}.Summarize().FDBMoves
			if n := len(moves); n == 0 || moves[n-1].From != "pa" || moves[n-1].To != "" {
				t.Errorf("FDB moves = %+v, want the last from pa to none", moves)
			}
		})
	}
}

// waitFDBEvent waits until the recorder has an event like want (its Time
// aside).
func waitFDBEvent(t *testing.T, rec *FDBRecorder, want FDBEvent) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		events := rec.Events()
		if slices.ContainsFunc(events, func(ev FDBEvent) bool {
			ev.Time = time.Time{}
			return ev == want
		}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no FDB event %+v after 5 s; events: %+v", want, events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
