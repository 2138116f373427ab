package ice_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/vflag/vflag/firmware/ice"
	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
)

// Every recording here (testdata/e810-*.yaml) is modelled on the kernel's
// ice documentation and source and Intel's E810 switchdev guide, not
// captured from an E810 (the project has none); igb-good.yaml is modelled
// on the testbed's igb guest. What the real kernel says is checked by the
// testbed test, on igb only.

func load(t *testing.T, name string) *nicview.Recording {
	t.Helper()
	r, err := nicview.LoadRecording("../testdata/"+name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func spec(mode plugin.Mode) plugin.BondSpec {
	return plugin.BondSpec{Bond: "bond0", Ports: [2]string{"ens1f0", "ens1f1"}, VFsPerPF: 4, Mode: mode}
}

func problems(fs []plugin.Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Severity >= plugin.SeverityWarn {
			out = append(out, f.Severity.String()+" "+f.Check+" "+f.Subject)
		}
	}
	return out
}

func render(fs []plugin.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

func TestProbe(t *testing.T) {
	for _, tc := range []struct {
		recording string
		spec      plugin.BondSpec
		follow    bool
		reason    string
	}{
		{recording: "e810-good.yaml", spec: spec(plugin.ModeHardware), follow: true},
		// What PrepareBond sets (switchdev, LLDP) is not a capability.
		{recording: "e810-fresh.yaml", spec: spec(plugin.ModeHardware), follow: true},
		{recording: "e810-old-kernel.yaml", spec: spec(plugin.ModeHardware), reason: "kernel 6.1.0-26-amd64 is older than 6.6: its ice has no SR-IOV VF-LAG"},
		{
			recording: "e810-two-cards.yaml",
			spec:      plugin.BondSpec{Bond: "bond0", Ports: [2]string{"ens1f0", "ens2f0"}, VFsPerPF: 4, Mode: plugin.ModeHardware},
			reason:    "ens1f0 (0000:af:00.0) and ens2f0 (0000:d8:00.0) are on different PCI devices: two cards, the NIC cannot move VFs between them",
		},
		{
			recording: "igb-good.yaml",
			spec:      plugin.BondSpec{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 7, Mode: plugin.ModeHardware},
			reason:    "pf0 (0000:01:00.0) is driven by igb, not ice: no ice VF-LAG; pf1 (0000:02:00.0) is driven by igb, not ice: no ice VF-LAG",
		},
	} {
		t.Run(tc.recording, func(t *testing.T) {
			caps, err := ice.New(load(t, tc.recording)).Probe(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if caps.HardwareFollow != tc.follow || caps.Reason != tc.reason {
				t.Errorf("Probe: follow %v, reason %q; want %v, %q", caps.HardwareFollow, caps.Reason, tc.follow, tc.reason)
			}
			if tc.follow && !reflect.DeepEqual(caps.HardwarePorts, []string{tc.spec.Ports[0]}) {
				t.Errorf("HardwarePorts = %v, want the primary only", caps.HardwarePorts)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	for _, tc := range []struct {
		recording string
		mode      plugin.Mode
		want      []string
	}{
		{recording: "e810-good.yaml", mode: plugin.ModeHardware},
		{recording: "e810-good.yaml", mode: plugin.ModeSoftware},
		{recording: "e810-fresh.yaml", mode: plugin.ModeHardware, want: []string{
			"fail eswitch-mode ens1f0", "fail lldp-agent ens1f0", "fail lldp-agent ens1f1",
		}},
		{recording: "e810-vfs-before-switchdev.yaml", mode: plugin.ModeHardware, want: []string{"fail eswitch-mode ens1f0"}},
		{recording: "e810-lldp-on.yaml", mode: plugin.ModeHardware, want: []string{"fail lldp-agent ens1f1", "fail dcb ens1f0,ens1f1"}},
		{recording: "e810-wrong-order.yaml", mode: plugin.ModeHardware, want: []string{"fail enslave-order bond0"}},
		{recording: "e810-old-kernel.yaml", mode: plugin.ModeHardware, want: []string{"fail kernel "}},
	} {
		t.Run(tc.recording+"/"+string(tc.mode), func(t *testing.T) {
			fs, err := ice.New(load(t, tc.recording)).Preflight(context.Background(), spec(tc.mode))
			if err != nil {
				t.Fatal(err)
			}
			if got := problems(fs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems\n%q\nwant\n%q\nall:\n%s", got, tc.want, render(fs))
			}
		})
	}
}

func TestPreflightSaysWhyVFsMustGo(t *testing.T) {
	fs, _ := ice.New(load(t, "e810-vfs-before-switchdev.yaml")).Preflight(context.Background(), spec(plugin.ModeHardware))
	want := "fail eswitch-mode ens1f0: primary ens1f0 (0000:af:00.0) is in legacy mode and has 4 VFs; ice changes the eswitch mode only while a PF has no VFs, so they must be removed first (ice_eswitch_mode_set) (fix: stop what uses them, then echo 0 > /sys/class/net/ens1f0/device/sriov_numvfs && devlink dev eswitch set pci/0000:af:00.0 mode switchdev)"
	if !strings.Contains(render(fs), want+"\n") {
		t.Errorf("missing %q in\n%s", want, render(fs))
	}
}

// From the NIC as shipped: switchdev before the VFs, LLDP off, then VFs,
// and a warning that the bonded ports must be enslaved again.
func TestPrepareBondFresh(t *testing.T) {
	ctx := context.Background()
	r := load(t, "e810-fresh.yaml")
	b := ice.New(r)
	fs, err := b.PrepareBond(ctx, spec(plugin.ModeHardware))
	if err != nil {
		t.Fatal(err)
	}
	wantLog := []string{
		"devlink dev eswitch set pci/0000:af:00.0 mode switchdev",
		"ethtool --set-priv-flags ens1f0 fw-lldp-agent off",
		"ethtool --set-priv-flags ens1f1 fw-lldp-agent off",
		"echo 4 > /sys/class/net/ens1f0/device/sriov_numvfs",
		"echo 4 > /sys/class/net/ens1f1/device/sriov_numvfs",
	}
	if got := r.Log(); !reflect.DeepEqual(got, wantLog) {
		t.Errorf("PrepareBond ran\n%q\nwant\n%q", got, wantLog)
	}
	if got := problems(fs); !reflect.DeepEqual(got, []string{"warn re-enslave bond0"}) {
		t.Errorf("problems %q\n%s", got, render(fs))
	}
	// Now Preflight passes and a second PrepareBond changes nothing.
	pre, _ := b.Preflight(ctx, spec(plugin.ModeHardware))
	if got := problems(pre); len(got) != 0 {
		t.Errorf("Preflight after PrepareBond: %q", got)
	}
	if _, err := b.PrepareBond(ctx, spec(plugin.ModeHardware)); err != nil || len(r.Log()) != len(wantLog) {
		t.Errorf("second PrepareBond: %v, log %q", err, r.Log())
	}
}

func TestPrepareBondRefuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		recording string
		spec      plugin.BondSpec
		log       []string
		want      []string
	}{
		// VFs present before switchdev: no devlink call, LLDP untouched
		// (already off), no VF recreated.
		{recording: "e810-vfs-before-switchdev.yaml", spec: spec(plugin.ModeHardware), want: []string{"fail eswitch-mode ens1f0"}},
		{recording: "e810-old-kernel.yaml", spec: spec(plugin.ModeHardware), want: []string{"fail kernel "}},
		{
			recording: "igb-good.yaml", spec: plugin.BondSpec{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 7, Mode: plugin.ModeHardware},
			want: []string{"fail driver pf0", "fail driver pf1"},
		},
		// LLDP is turned off; the DCB the firmware agent negotiated still
		// differs, which vflag cannot fix.
		{
			recording: "e810-lldp-on.yaml", spec: spec(plugin.ModeHardware),
			log:  []string{"ethtool --set-priv-flags ens1f1 fw-lldp-agent off"},
			want: []string{"fail dcb ens1f0,ens1f1", "warn re-enslave bond0"},
		},
		{recording: "e810-wrong-order.yaml", spec: spec(plugin.ModeHardware), want: []string{"fail enslave-order bond0"}},
	} {
		t.Run(tc.recording, func(t *testing.T) {
			r := load(t, tc.recording)
			fs, err := ice.New(r).PrepareBond(ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := problems(fs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems\n%q\nwant\n%q\n%s", got, tc.want, render(fs))
			}
			if got := r.Log(); !reflect.DeepEqual(got, tc.log) {
				t.Errorf("ran %q, want %q", got, tc.log)
			}
		})
	}
}

func TestPlanFailover(t *testing.T) {
	ctx := context.Background()
	req := plugin.FailoverRequest{Bond: "bond0", From: "ens1f0", To: "ens1f1", VFs: []vfmgr.VFRef{{PF: "ens1f0", Index: 0}, {PF: "ens1f0", Index: 3}}}
	back := plugin.FailoverRequest{Bond: "bond0", From: "ens1f1", To: "ens1f0", VFs: []vfmgr.VFRef{{PF: "ens1f1", Index: 1}}}
	for _, tc := range []struct {
		recording      string
		req            plugin.FailoverRequest
		hardware, soft int
	}{
		{recording: "e810-good.yaml", req: req, hardware: 2},
		// The backup's own VFs never follow in hardware.
		{recording: "e810-good.yaml", req: back, soft: 1},
		{recording: "e810-lldp-on.yaml", req: req, soft: 2},
		{recording: "e810-fresh.yaml", req: req, soft: 2},
		// ens1f1 was enslaved first: ens1f0's VFs are not the primary's.
		{recording: "e810-wrong-order.yaml", req: req, soft: 2},
	} {
		t.Run(tc.recording+"/"+tc.req.From, func(t *testing.T) {
			plan, err := ice.New(load(t, tc.recording)).PlanFailover(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if err := plugin.CheckPlan(tc.req, plan); err != nil {
				t.Fatal(err)
			}
			if len(plan.Hardware) != tc.hardware || len(plan.Software) != tc.soft {
				t.Errorf("plan %+v, want %d hardware, %d software", plan, tc.hardware, tc.soft)
			}
		})
	}
}

func TestVerifyFailover(t *testing.T) {
	ctx := context.Background()
	plan := plugin.FailoverPlan{Bond: "bond0", From: "ens1f0", To: "ens1f1", Hardware: []vfmgr.VFRef{{PF: "ens1f0", Index: 0}, {PF: "ens1f0", Index: 3}}}
	fs, err := ice.New(load(t, "e810-after-failover.yaml")).VerifyFailover(ctx, plan)
	if err != nil || plugin.Worst(fs) != plugin.SeverityInfo {
		t.Errorf("after a failover to ens1f1: %v\n%s", err, render(fs))
	}
	// The bond did not move (e810-good is active on ens1f0).
	fs, _ = ice.New(load(t, "e810-good.yaml")).VerifyFailover(ctx, plan)
	if got := problems(fs); !reflect.DeepEqual(got, []string{"fail hardware-follow ens1f0 vf 0", "fail hardware-follow ens1f0 vf 3"}) {
		t.Errorf("bond still on ens1f0: %q", got)
	}
	if !strings.Contains(fs[0].Detail, `bond0's active port is "ens1f0", not ens1f1`) {
		t.Errorf("detail: %s", fs[0].Detail)
	}
}

func TestSRIOVDelegates(t *testing.T) {
	ctx := context.Background()
	r := load(t, "e810-good.yaml")
	b := ice.New(r)
	vfs, err := b.VFs(ctx, "ens1f0")
	if err != nil || len(vfs) != 4 {
		t.Fatalf("VFs = %v, %v", vfs, err)
	}
	if err := b.ReleaseVF(ctx, "ens1f0", 1); err != nil {
		t.Fatal(err)
	}
	if got := r.Log(); len(got) != 1 || got[0] != "ip link set ens1f0 vf 1 mac 00:00:00:00:00:00 vlan 0 qos 0 spoofchk on trust off" {
		t.Errorf("ReleaseVF ran %q", got)
	}
}
