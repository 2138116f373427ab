package testenv

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTestbedLifecycle boots one KVM-host VM and checks what a user of the
// testbed relies on: the guest runs the real drivers, a cable pull is seen
// by the guest's bond, pause/resume work, and teardown leaves nothing behind.
func TestTestbedLifecycle(t *testing.T) {
	tb := ForTest(t, HostSpec{Name: "kvm1", VFs: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ready, _ := tb.ReadyAfter("kvm1")
	t.Logf("kvm1 ready after %v", ready)

	run := func(cmd string) string {
		t.Helper()
		out, err := tb.MustExec(ctx, "kvm1", cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	// Exec returns exit codes and both output streams.
	res, err := tb.Exec(ctx, "kvm1", "echo out; echo err >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" {
		t.Errorf("exec = exit %d stdout %q stderr %q, want 3 \"out\\n\" \"err\\n\"", res.ExitCode, res.Stdout, res.Stderr)
	}

	// Real drivers: igb PFs, igbvf VFs, bonding.
	if got := run("basename $(readlink /sys/class/net/pf0/device/driver)"); got != "igb" {
		t.Errorf("pf0 driver = %q, want igb", got)
	}
	if got := run("basename $(readlink /sys/class/net/pf0/device/virtfn0/driver)"); got != "igbvf" {
		t.Errorf("pf0 VF 0 driver = %q, want igbvf", got)
	}
	if got := run("cat /sys/class/net/pf0/device/sriov_totalvfs"); got != "7" {
		t.Errorf("sriov_totalvfs = %q, want 7", got)
	}
	if got := run("cat /sys/class/net/pf1/device/sriov_numvfs"); got != "3" {
		t.Errorf("pf1 sriov_numvfs = %q, want 3", got)
	}
	if got := run("cat /sys/class/net/bond0/bonding/mode"); got != "active-backup 1" {
		t.Errorf("bond0 mode = %q", got)
	}
	active := run("cat /sys/class/net/bond0/bonding/active_slave")
	if active != "pf0" && active != "pf1" {
		t.Fatalf("bond0 active slave = %q", active)
	}

	// The client reaches the host's bond address over the fabric.
	addr, _ := tb.HostAddr("kvm1")
	if out, err := runIn(tb.ClientNetns(), "ping", "-c", "3", "-i", "0.2", "-W", "2", addr); err != nil {
		t.Errorf("client cannot ping kvm1 at %s: %v\n%s", addr, err, out)
	}

	// Pulling the active port's cable makes the bond fail over; plugging it
	// back brings the link back.
	port := "kvm1-p" + active[len(active)-1:]
	if _, err := tb.Pull(ctx, port, Cable); err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"pf0": "pf1", "pf1": "pf0"}[active]
	waitFor(t, 20*time.Second, "bond0 to fail over to "+other, func() bool {
		return run("cat /sys/class/net/bond0/bonding/active_slave") == other
	})
	if got := run("cat /sys/class/net/" + active + "/carrier"); got != "0" {
		t.Errorf("%s carrier after pull = %q, want 0", active, got)
	}
	if _, err := tb.Plug(ctx, port); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, active+" carrier back", func() bool {
		return run("cat /sys/class/net/"+active+"/carrier") == "1"
	})

	// Bad input names the thing at fault.
	if _, err := tb.Pull(ctx, "kvm9-p0", Cable); !errors.Is(err, ErrUnknownPort) || !strings.Contains(err.Error(), "kvm1-p0") {
		t.Errorf("pull of unknown port: %v", err)
	}
	if _, err := tb.Exec(ctx, "nosuch", "true"); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("exec on unknown host: %v", err)
	}
	if err := tb.Start(ctx); !errors.Is(err, ErrAlreadyUp) {
		t.Errorf("second Start: %v, want ErrAlreadyUp", err)
	}
	// So is a second testbed of the same name (a second `up`).
	twin, err := New(Config{Name: tb.Name(), BinDir: tb.cfg.BinDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := twin.AddHost(HostSpec{Name: "kvm1"}); err != nil {
		t.Fatal(err)
	}
	if err := twin.Start(ctx); !errors.Is(err, ErrAlreadyUp) {
		t.Errorf("second testbed named %s: %v, want ErrAlreadyUp", tb.Name(), err)
	}

	// Pause stops the guest: an exec cannot complete; resume brings it back.
	if err := tb.Pause(ctx, "kvm1"); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := tb.Exec(pctx, "kvm1", "true"); err == nil {
		t.Error("exec in a paused host succeeded")
	}
	pcancel()
	if err := tb.Resume(ctx, "kvm1"); err != nil {
		t.Fatal(err)
	}
	if got := run("echo back"); got != "back" {
		t.Errorf("after resume: %q", got)
	}

	// Teardown leaves no QEMU, namespace or run directory behind.
	pid := tb.hosts[0].PID
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if isOurQEMU(pid, tb.hosts[0].dir) {
		t.Errorf("QEMU pid %d still running after Close", pid)
	}
	for _, p := range []string{tb.FabricNetns(), tb.ClientNetns(), tb.dir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Close", p)
		}
	}
}
