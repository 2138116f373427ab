package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/api/vflagpb"
)

// attachDomain attaches libvirt domain vm<n> (UUID uuid-<n>) with MAC
// testMAC(n) in mode (failover or hotswap), as the hook asks for it.
func attachDomain(h *harness, n int, mode string) {
	h.t.Helper()
	if _, err := h.d.Attach(context.Background(), &vflagpb.AttachRequest{
		Vm: fmt.Sprintf("vm%d", n), Iface: "net0", Mac: testMAC(n), Mode: mode, DomainUuid: fmt.Sprintf("uuid-%d", n),
	}); err != nil {
		h.t.Fatalf("attach vm%d (%s): %v", n, mode, err)
	}
}

// waitAnnounced waits until the announcer has recorded a line with each
// of want and returns everything recorded; a missing one fails the test
// after a generous deadline (announcements go out from goroutines).
func waitAnnounced(t *testing.T, h *harness, got *strings.Builder, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got.WriteString(h.ann.take())
		missing := ""
		for _, w := range want {
			if !strings.Contains(got.String(), w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no announcement %q; announced:\n%s", missing, got.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// A libvirt domain's move is slow when its guest takes long to let go of
// the VF (the guest must acknowledge the hot-unplug). Each VM is announced
// from the new PF as soon as its own traffic can arrive there: a teamed VM
// (failover) at once, since its virtio standby on the bond carries the
// traffic during the swap; a hotswap VM once its new VF is plugged, without
// waiting for a slower guest.
func TestDomainsAnnouncedAsTheirMovesComplete(t *testing.T) {
	h := running(t, setup{domains: true, parallel: 3, rarp: true})
	attachDomain(h, 1, "failover")
	attachDomain(h, 2, "hotswap")
	attachDomain(h, 3, "hotswap")
	h.drain()
	entered, gates := h.vms.gate("vm1", "vm2")
	opened := map[string]bool{}
	open := func(vm string) {
		if !opened[vm] {
			opened[vm] = true
			close(gates[vm])
		}
	}
	// A failing check must not leave the event loop waiting on a gate.
	t.Cleanup(func() { open("vm1"); open("vm2") })

	cutDone := make(chan struct{})
	go func() {
		defer close(cutDone)
		h.cut("pf0", time.Second)
	}()
	for range 2 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the failover did not start unplugging vm1 and vm2")
		}
	}
	var got strings.Builder
	// vm1's and vm2's guests still hold their old VFs; vm3 has moved.
	waitAnnounced(t, h, &got, "announce pf1 "+testMAC(1), "announce pf1 "+testMAC(3))
	if strings.Contains(got.String(), testMAC(2)) {
		t.Errorf("vm2 (hotswap) announced on pf1 before it has a VF there:\n%s", got.String())
	}

	// The announce events say when the frames went out, not when the
	// failover (still waiting for vm1 and vm2) let the event through.
	seen := time.Now().UnixMilli()
	time.Sleep(20 * time.Millisecond)
	open("vm1")
	open("vm2")
	<-cutDone
	h.sync()
	waitAnnounced(t, h, &got, "announce pf1 "+testMAC(2))
	var first *vflagpb.Event
	for first == nil {
		select {
		case ev := <-h.events:
			if ev.GetKind() == "announce" {
				first = ev
			}
		default:
			t.Fatal("no announce event")
		}
	}
	if first.GetAtUnixMs() > seen {
		t.Errorf("first announce event stamped %d ms after its frames were seen", first.GetAtUnixMs()-seen)
	}
	if n := strings.Count(got.String(), testMAC(1)); n != 1 {
		t.Errorf("vm1 announced %d times, want once:\n%s", n, got.String())
	}
	if want := "vm1/net0 pf1 vf 0\nvm2/net0 pf1 vf 1\nvm3/net0 pf1 vf 2\n"; h.vms.pluggedText() != want {
		t.Errorf("plugged after the failover:\n%s\nwant:\n%s", h.vms.pluggedText(), want)
	}
}
