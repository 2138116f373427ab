package nsguest

import (
	"context"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/internal/nsrun"
	"github.com/vflag/vflag/internal/privtest"
)

// TestHotplug: an interface that appears in the namespace is brought up
// with the guest's addresses, and so is its replacement after the first
// one is gone — as when vflagd hands the VM a VF from the other port.
func TestHotplug(t *testing.T) {
	name, path := privtest.Netns(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- nsrun.Do(path, func() error {
			return Guest{Ifname: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.50/24")}, Log: slog.New(slog.DiscardHandler)}.Run(ctx)
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hotplug: %v", err)
		}
	})
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	waitAddr := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			out := ip("-br", "addr", "show", "dev", "eth0")
			if strings.Contains(out, "198.18.0.50/24") && !strings.Contains(out, "DOWN") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("eth0 not configured: %s", out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range 2 {
		// A "NIC" appears: a veth whose peer stays in the namespace too.
		ip("link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
		ip("link", "set", "peer0", "up")
		waitAddr()
		if i == 0 {
			ip("link", "del", "eth0")
		}
	}
}
