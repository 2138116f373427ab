package scenario

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/testenv"
)

// TestRDMAPull is issue 6's claim on real rdma_rxe, bonding and igb: an RC
// connection (ibv_rc_pingpong) between two hosts keeps going across a pull
// of the active port when vflagd put Soft-RoCE above the bond, and breaks
// when the RDMA device sits on the active port only or on the bond netdev
// itself.
func TestRDMAPull(t *testing.T) {
	tb := testenv.ForTest(t, testenv.HostSpec{Name: "kvm1", VFs: 1}, testenv.HostSpec{Name: "kvm2", VFs: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rs, err := RunRDMAPull(ctx, tb, RDMAOptions{After: 5 * time.Second})
	if err != nil {
		if res, xerr := tb.Exec(context.Background(), "kvm1", "cat /tmp/vflagd.log; rdma link; dmesg | tail -n 20"); xerr == nil {
			t.Logf("kvm1:\n%s", res.Stdout)
		}
		t.Fatal(err)
	}
	if _, err := WriteRDMAResults(t.ArtifactDir(), rs); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := WriteRDMAText(&text, rs); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + text.String())
	for _, r := range rs {
		if r.LossAtMs == 0 {
			t.Errorf("%s: the host never saw the loss (bond switch or PF down) in the window", r.Variant)
			continue
		}
		if r.SendsBefore == 0 {
			t.Errorf("%s: no RDMA traffic before the pull", r.Variant)
		}
		events := strings.Join(r.VflagdRDMA, "\n")
		switch r.Variant {
		case RDMAVflag:
			if !r.Survived {
				t.Errorf("vflag: the RDMA connection did not survive the pull (%d sends after, stall %.0f ms of %.0f ms): %s",
					r.SendsAfter, r.StallMs, r.WindowMs, r.AppOutput)
			}
			if !strings.Contains(events, "rxe_bond0 port 1 ACTIVE on br0, GIDs kept their indexes") {
				t.Errorf("vflag: vflagd did not report rxe_bond0 on br0 with its GIDs kept after the failover; rdma events:\n%s", events)
			}
		case RDMAOnBond:
			if r.Survived {
				t.Errorf("%s: the RDMA connection survived the pull (%d sends after): the baseline should break", r.Variant, r.SendsAfter)
			}
			if !strings.Contains(events, "GIDs renumbered, open RDMA connections failed") {
				t.Errorf("%s: vflagd did not report the renumbered GIDs; rdma events:\n%s", r.Variant, events)
			}
		default:
			if r.Survived {
				t.Errorf("%s: the RDMA connection survived the pull (%d sends after): the baseline should break", r.Variant, r.SendsAfter)
			}
		}
	}
}
