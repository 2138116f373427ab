package nsvm

import (
	"context"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vflag/vflag/internal/nsrun"
	"github.com/vflag/vflag/internal/privtest"
	"github.com/vflag/vflag/vfmgr"
)

// TestUnplugAndAddrs: the VM's interface and its addresses are read inside
// the VM's namespace, and Unplug brings the interface back to the host
// namespace, down and renamed. Both "host" and "VM" are fresh namespaces
// (Plug needs a VF; the testbed tier covers it on igb).
func TestUnplugAndAddrs(t *testing.T) {
	hostName, hostPath := privtest.Netns(t)
	vmName, _ := privtest.Netns(t)
	ip := func(ns string, args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip -n %s %v: %v: %s", ns, args, err, out)
		}
		return string(out)
	}
	ip(hostName, "link", "add", "nic0", "type", "veth", "peer", "name", "peer0")
	ip(hostName, "link", "set", "nic0", "netns", vmName)
	ip(vmName, "link", "set", "nic0", "name", "eth0")
	ip(vmName, "addr", "add", "198.18.0.77/24", "dev", "eth0")
	ip(vmName, "link", "set", "eth0", "up")
	// What an Unplug interrupted after its rename leaves behind.
	ip(hostName, "link", "add", "nic1", "type", "veth", "peer", "name", "peer1")
	ip(hostName, "link", "set", "nic1", "netns", vmName)
	ip(vmName, "link", "set", "nic1", "name", "vfl999", "up")

	v := VMs{}
	a := vfmgr.Allocation{VM: "vm", Iface: "eth0", Netns: vmName, NetnsIfname: "eth0"}
	err := nsrun.Do(hostPath, func() error {
		addrs, err := v.Addrs(context.Background(), a)
		if err != nil {
			return err
		}
		found := false
		for _, ad := range addrs {
			found = found || ad == netip.MustParseAddr("198.18.0.77")
		}
		if !found {
			t.Errorf("Addrs = %v, want 198.18.0.77 among them", addrs)
		}
		if err := v.Unplug(context.Background(), a); err != nil {
			return err
		}
		// A second Unplug finds nothing to take back: not an error.
		return v.Unplug(context.Background(), a)
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := ip(vmName, "-br", "link"); strings.Contains(out, "eth0") || strings.Contains(out, "vfl") {
		t.Errorf("eth0 or a leftover still in the VM:\n%s", out)
	}
	var back []string
	for _, line := range strings.Split(ip(hostName, "-br", "link"), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "vfl") {
			f[0], _, _ = strings.Cut(f[0], "@") // veth names show their peer
			if f[1] != "DOWN" {
				t.Errorf("%s is back in the host but not down: %q", f[0], line)
			}
			back = append(back, f[0])
		}
	}
	if len(back) != 2 || !slices.Contains(back, "vfl999") {
		t.Errorf("host namespace should hold the VM's interface and the leftover vfl999, down; got %v", back)
	}

	// Bad input names the VM.
	if _, err := v.Addrs(context.Background(), vfmgr.Allocation{VM: "vm9", Netns: "../etc"}); err == nil || !strings.Contains(err.Error(), "vm9") {
		t.Errorf("bad namespace name: %v", err)
	}
}
