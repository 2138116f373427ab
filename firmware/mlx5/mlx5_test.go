package mlx5_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/firmware/mlx5"
	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
)

// Every recording here (testdata/cx6dx-*.yaml) is modelled on the mlx5
// LAG code (lag.c, lag/debugfs.c) and NVIDIA's VF-LAG guide, not
// captured from a ConnectX (the project has none); igb-good.yaml is
// modelled on the testbed's igb guest. What the real kernel says is
// checked by the testbed test, on igb only.

func load(t *testing.T, name string) *nicview.Recording {
	t.Helper()
	r, err := nicview.LoadRecording("../testdata/"+name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const p0, p1 = "enp8s0f0np0", "enp8s0f1np1"

func spec(mode plugin.Mode, vfs int) plugin.BondSpec {
	return plugin.BondSpec{Bond: "bond0", Ports: [2]string{p0, p1}, VFsPerPF: vfs, Mode: mode}
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
		name, recording string
		spec            plugin.BondSpec
		reason          string
	}{
		{name: "good", recording: "cx6dx-good.yaml", spec: spec(plugin.ModeHardware, 4)},
		{name: "legacy can be prepared", recording: "cx6dx-legacy.yaml", spec: spec(plugin.ModeHardware, 4)},
		{name: "65 VFs", recording: "cx6dx-good.yaml", spec: spec(plugin.ModeHardware, 65), reason: "65 VFs per PF configured; vflag uses mlx5 VF-LAG with at most 64"},
		{
			name: "two cards", recording: "cx6dx-two-cards.yaml",
			spec:   plugin.BondSpec{Bond: "bond0", Ports: [2]string{p0, "enp9s0f0np0"}, VFsPerPF: 4, Mode: plugin.ModeHardware},
			reason: "enp8s0f0np0 (0000:08:00.0) and enp9s0f0np0 (0000:09:00.0) are on different PCI devices: two cards, the NIC cannot move VFs between them",
		},
		{
			name: "igb", recording: "igb-good.yaml",
			spec:   plugin.BondSpec{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 7, Mode: plugin.ModeHardware},
			reason: "pf0 (0000:01:00.0) is driven by igb, not mlx5_core: no mlx5 VF-LAG; pf1 (0000:02:00.0) is driven by igb, not mlx5_core: no mlx5 VF-LAG",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caps, err := mlx5.New(load(t, tc.recording)).Probe(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if caps.HardwareFollow != (tc.reason == "") || caps.Reason != tc.reason || caps.MaxVFsPerPF != 64 {
				t.Errorf("Probe = %+v, want reason %q", caps, tc.reason)
			}
			if caps.HardwareFollow && !reflect.DeepEqual(caps.HardwarePorts, tc.spec.Ports[:]) {
				t.Errorf("HardwarePorts = %v, want both ports", caps.HardwarePorts)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	for _, tc := range []struct {
		recording string
		vfs       int
		want      []string
	}{
		{recording: "cx6dx-good.yaml", vfs: 4},
		{recording: "cx6dx-good.yaml", vfs: 100, want: []string{"fail num-vfs " + p0, "fail num-vfs " + p1, "fail vf-count bond0"}},
		{recording: "cx6dx-legacy.yaml", vfs: 4, want: []string{"fail eswitch-mode " + p0, "fail eswitch-mode " + p1, "fail lag bond0"}},
		{recording: "cx6dx-vfio.yaml", vfs: 4, want: []string{"fail eswitch-mode " + p0, "warn vf-driver " + p0 + " vf 1", "fail eswitch-mode " + p1, "fail lag bond0"}},
		{recording: "cx6dx-no-debugfs.yaml", vfs: 4, want: []string{"warn lag bond0"}},
	} {
		t.Run(tc.recording, func(t *testing.T) {
			fs, err := mlx5.New(load(t, tc.recording)).Preflight(context.Background(), spec(plugin.ModeHardware, tc.vfs))
			if err != nil {
				t.Fatal(err)
			}
			if got := problems(fs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems\n%q\nwant\n%q\n%s", got, tc.want, render(fs))
			}
		})
	}
}

// From legacy mode with bound VFs: unbind every VF, switchdev on both
// PFs, the LAG comes up (recorded effect), bind the VFs again.
func TestPrepareBondFormsLAG(t *testing.T) {
	ctx := context.Background()
	r := load(t, "cx6dx-legacy.yaml")
	b := mlx5.New(r)
	fs, err := b.PrepareBond(ctx, spec(plugin.ModeHardware, 4))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	vfPCIs := []string{"0000:08:00.2", "0000:08:00.3", "0000:08:00.4", "0000:08:00.5", "0000:08:08.2", "0000:08:08.3", "0000:08:08.4", "0000:08:08.5"}
	for _, pci := range vfPCIs {
		want = append(want, "echo "+pci+" > /sys/bus/pci/drivers/mlx5_core/unbind")
	}
	want = append(want, "devlink dev eswitch set pci/0000:08:00.0 mode switchdev", "devlink dev eswitch set pci/0000:08:00.1 mode switchdev")
	for _, pci := range vfPCIs {
		want = append(want, "echo "+pci+" > /sys/bus/pci/drivers/mlx5_core/bind")
	}
	if got := r.Log(); !reflect.DeepEqual(got, want) {
		t.Errorf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if plugin.Worst(fs) != plugin.SeverityOK {
		t.Errorf("findings:\n%s", render(fs))
	}
	if pre, _ := b.Preflight(ctx, spec(plugin.ModeHardware, 4)); len(problems(pre)) != 0 {
		t.Errorf("Preflight after PrepareBond:\n%s", render(pre))
	}
	// Idempotent.
	n := len(r.Log())
	if _, err := b.PrepareBond(ctx, spec(plugin.ModeHardware, 4)); err != nil || len(r.Log()) != n {
		t.Errorf("second PrepareBond: %v, ran %q", err, r.Log()[n:])
	}
}

func TestPrepareBondRefuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		recording string
		vfs       int
		want      []string
	}{
		// A VM holds a VF: the LAG must not change under it.
		{recording: "cx6dx-vfio.yaml", vfs: 4, want: []string{"fail vf-driver " + p0 + " vf 1"}},
		{recording: "cx6dx-legacy.yaml", vfs: 65, want: []string{"fail vf-count bond0"}},
	} {
		t.Run(tc.recording, func(t *testing.T) {
			r := load(t, tc.recording)
			fs, err := mlx5.New(r).PrepareBond(ctx, spec(plugin.ModeHardware, tc.vfs))
			if err != nil {
				t.Fatal(err)
			}
			if got := problems(fs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems\n%q\nwant\n%q\n%s", got, tc.want, render(fs))
			}
			if len(r.Log()) != 0 {
				t.Errorf("changed the host: %q", r.Log())
			}
		})
	}
}

// The LAG never comes up (port 2 is not in the bond): the VFs are bound
// again and a Fail says so.
func TestPrepareBondLAGDoesNotForm(t *testing.T) {
	ctx := context.Background()
	r := load(t, "cx6dx-unbonded.yaml")
	b := &mlx5.Backend{Device: r, LAGWait: time.Millisecond}
	fs, err := b.PrepareBond(ctx, spec(plugin.ModeHardware, 4))
	if err != nil {
		t.Fatal(err)
	}
	if got := problems(fs); !reflect.DeepEqual(got, []string{"fail lag bond0"}) {
		t.Errorf("problems %q\n%s", got, render(fs))
	}
	if want := "the mlx5 LAG of 0000:08:00.0 is disabled, 1ms after both PFs were in switchdev mode (are both enslaved to bond0?)"; fs[len(fs)-1].Detail != want {
		t.Errorf("detail %q\nwant   %q", fs[len(fs)-1].Detail, want)
	}
	log := r.Log()
	if len(log) != 18 || !strings.HasSuffix(log[17], "/mlx5_core/bind") {
		t.Errorf("VFs not bound again:\n%s", strings.Join(log, "\n"))
	}
}

func TestPlanAndVerifyFailover(t *testing.T) {
	ctx := context.Background()
	vfs := []vfmgr.VFRef{{PF: p0, Index: 0}, {PF: p0, Index: 2}}
	req := plugin.FailoverRequest{Bond: "bond0", From: p0, To: p1, VFs: vfs}
	for _, tc := range []struct {
		plan, verify string
		hardware     bool
		worst        plugin.Severity
	}{
		{plan: "cx6dx-good.yaml", verify: "cx6dx-after-failover.yaml", hardware: true, worst: plugin.SeverityOK},
		{plan: "cx6dx-good.yaml", verify: "cx6dx-stale-mapping.yaml", hardware: true, worst: plugin.SeverityFail},
		{plan: "cx6dx-no-debugfs.yaml", verify: "cx6dx-no-debugfs.yaml", hardware: true, worst: plugin.SeverityFail},
		{plan: "cx6dx-legacy.yaml", hardware: false},
	} {
		t.Run(tc.plan+"/"+tc.verify, func(t *testing.T) {
			plan, err := mlx5.New(load(t, tc.plan)).PlanFailover(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if err := plugin.CheckPlan(req, plan); err != nil {
				t.Fatal(err)
			}
			if got := len(plan.Hardware) == len(vfs); got != tc.hardware {
				t.Fatalf("plan %+v, want hardware %v", plan, tc.hardware)
			}
			if tc.verify == "" {
				return
			}
			fs, err := mlx5.New(load(t, tc.verify)).VerifyFailover(ctx, plan)
			if err != nil {
				t.Fatal(err)
			}
			if plugin.Worst(fs) != tc.worst {
				t.Errorf("VerifyFailover worst %s, want %s:\n%s", plugin.Worst(fs), tc.worst, render(fs))
			}
		})
	}
}

func TestVerifyStaleMappingSaysWhy(t *testing.T) {
	plan := plugin.FailoverPlan{Bond: "bond0", From: p0, To: p1, Hardware: []vfmgr.VFRef{{PF: p0, Index: 0}}}
	fs, _ := mlx5.New(load(t, "cx6dx-stale-mapping.yaml")).VerifyFailover(context.Background(), plan)
	want := "fail hardware-follow enp8s0f0np0 vf 0: mlx5 VF-LAG did not carry it to enp8s0f1np1: the LAG maps its ports as 1:1 2:1, not all to port 2 (enp8s0f1np1)"
	if len(fs) != 1 || !strings.HasPrefix(fs[0].String(), want) {
		t.Errorf("got\n%s\nwant prefix\n%s", render(fs), want)
	}
}
