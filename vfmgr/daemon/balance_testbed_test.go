package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/scenario"
)

// TestBalanceOnIgb is active-active for VMs on real igb/igbvf/bonding:
// with policy balance the VMs spread over both PFs; pulling one port's
// cable re-homes its VMs to the survivor with every VM reachable; when
// the cable is back they return to their home PF after the failback
// delay, again reachable.
func TestBalanceOnIgb(t *testing.T) {
	tb := testenv.ForTest(t, testenv.HostSpec{Name: "kvm1", VFs: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(cmd string) string {
		t.Helper()
		out, err := tb.MustExec(ctx, "kvm1", cmd)
		if err != nil {
			t.Fatalf("%v", err)
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			if res, err := tb.Exec(context.Background(), "kvm1", "tail -n 40 /tmp/vflagd.log; vflag vms"); err == nil {
				t.Logf("vflagd:\n%s", res.Stdout)
			}
		}
	})
	run(scenario.StartVflagdScript(4, "    policy: balance\n    failback: {after: 2s}", ""))
	const n = 4
	var addrs []netip.Addr
	for i := 1; i <= n; i++ {
		addr := netip.AddrFrom4([4]byte{198, 18, 0, byte(140 + i)})
		addrs = append(addrs, addr)
		run(fmt.Sprintf(`set -e
ip netns add v1%[1]d
ip -n v1%[1]d link set lo up
(ip netns exec v1%[1]d vflag-guest hotplug eth0 %[2]s/24 > /tmp/v1%[1]d.log 2>&1 &)
vflag attach v1%[1]d --mac %[3]s --netns v1%[1]d --netns-ifname eth0 >/dev/null`, i, addr, mac(0x40+i)))
	}
	allReachable := func(when string) {
		t.Helper()
		for i, a := range addrs {
			if err := scenario.WaitReachable(ctx, tb, a, 30*time.Second); err != nil {
				t.Fatalf("%s: VM v1%d (%s) unreachable: %v", when, i+1, a, err)
			}
		}
	}
	allReachable("after attach")
	if got := placement(t, run("vflag vms")); got["pf0"] != n/2 || got["pf1"] != n/2 {
		t.Fatalf("balance: VMs per PF %v, want %d on each", got, n/2)
	}
	home := map[string]string{}
	for _, m := range vmLine.FindAllStringSubmatch(run("vflag vms"), -1) {
		home[m[1]] = m[3]
	}

	if _, err := tb.Pull(ctx, "kvm1-p0", testenv.Cable); err != nil {
		t.Fatal(err)
	}
	allReachable("after pulling pf0")
	if got := placement(t, run("vflag vms")); got["pf1"] != n {
		t.Errorf("after pulling pf0: VMs per PF %v, want all %d on pf1", got, n)
	}
	consistent(t, run, n)

	if _, err := tb.Plug(ctx, "kvm1-p0"); err != nil {
		t.Fatal(err)
	}
	// Hold-down (200 ms) + failback delay (2 s), then the move itself.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got := placement(t, run("vflag vms")); got["pf0"] == n/2 && got["pf1"] == n/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after plugging pf0 back: VMs per PF %v, want %d on each again", placement(t, run("vflag vms")), n/2)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, m := range vmLine.FindAllStringSubmatch(run("vflag vms"), -1) {
		if home[m[1]] != m[3] {
			t.Errorf("after failback: %s is on %s, its home was %s", m[1], m[3], home[m[1]])
		}
	}
	allReachable("after failback")
	consistent(t, run, n)
}
