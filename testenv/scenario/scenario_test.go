package scenario

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/probe"
)

// TestCablePull is the problem statement, with real igb/igbvf/bonding: a VM
// whose only VF is on the pulled port stays unreachable, and a VM with a
// bond of its own over one VF per port recovers and is learned behind the
// surviving port.
func TestCablePull(t *testing.T) {
	tb := testenv.ForTest(t, testenv.HostSpec{Name: "kvm1"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tls, err := RunCablePull(ctx, tb, Options{After: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteResults(t.ArtifactDir(), tls); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := probe.WriteText(&text, tls); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + text.String())

	byVariant := map[string]probe.Timeline{}
	for _, tl := range tls {
		byVariant[tl.Variant] = tl
	}
	single := byVariant[NoVflag].Summarize()
	if single.Sent == 0 || single.Lost == single.Sent {
		t.Fatalf("no-vflag: %d sent, %d lost: the VM was never reachable", single.Sent, single.Lost)
	}
	if single.Recovered {
		t.Errorf("no-vflag: the VM recovered (gap %.0f ms) although its only VF is behind the pulled cable", single.GapMs)
	}
	bonded := byVariant[GuestBond].Summarize()
	if !bonded.Recovered {
		t.Errorf("guest-bond: the VM did not recover within the window (%d of %d probes lost)", bonded.Lost, bonded.Sent)
	}
	flagged := byVariant[Vflag].Summarize()
	if !flagged.Recovered {
		t.Errorf("vflag: the VM did not recover within the window (%d of %d probes lost)", flagged.Lost, flagged.Sent)
		if out, err := tb.Exec(ctx, "kvm1", "cat /tmp/vflagd.log; vflag vms"); err == nil {
			t.Logf("vflagd:\n%s", out.Stdout)
		}
	}
	learnedVflag := false
	for _, m := range flagged.FDBMoves {
		learnedVflag = learnedVflag || (m.Bridge == testenv.ToRB && m.To == "kvm1-p1" && m.AtMs > 0)
	}
	if !learnedVflag {
		t.Errorf("vflag: ToR-B never learned %s on kvm1-p1 after the pull; moves: %+v", vmMAC(3), flagged.FDBMoves)
	}
	// No bonding in that guest: its namespace holds one plain NIC.
	if out, err := tb.MustExec(ctx, "kvm1", "ip -n vm3 -o link show type bond | wc -l; ip netns exec vm3 cat /sys/class/net/eth0/address"); err != nil || out != "0\n"+vmMAC(3).String()+"\n" {
		t.Errorf("vflag VM's links: %q, %v; want no bond and eth0 with %s", out, err, vmMAC(3))
	}

	// After the pull, ToR-B must have learned the bonded VM behind the host's
	// other port.
	learned := false
	for _, m := range bonded.FDBMoves {
		if m.Bridge == testenv.ToRB && m.To == "kvm1-p1" && m.AtMs > 0 {
			learned = true
		}
	}
	if !learned {
		t.Errorf("guest-bond: ToR-B never learned %s on kvm1-p1 after the pull; moves: %+v", vmMAC(2), bonded.FDBMoves)
	}
}
