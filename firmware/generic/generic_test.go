package generic_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vflag/vflag/firmware"
	"github.com/vflag/vflag/firmware/generic"
	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
)

// The recordings are modelled on the testbed's igb guest (igb-*) and on
// the E810's public documentation (e810-*); none is captured from a
// kernel. The testbed test (testbed_test.go) runs the same backend
// against the real igb kernel.

func load(t *testing.T, name string) *nicview.Recording {
	t.Helper()
	r, err := nicview.LoadRecording("../testdata/"+name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// problems renders the findings worse than Info as "sev check subject".
func problems(fs []plugin.Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Severity >= plugin.SeverityWarn {
			out = append(out, f.Severity.String()+" "+f.Check+" "+f.Subject)
		}
	}
	return out
}

func igbSpec(mode plugin.Mode) plugin.BondSpec {
	return plugin.BondSpec{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 7, Mode: mode}
}

func TestProbeIgb(t *testing.T) {
	b := generic.New(load(t, "igb-good.yaml"))
	caps, err := b.Probe(context.Background(), igbSpec(plugin.ModeSoftware))
	if err != nil {
		t.Fatal(err)
	}
	want := plugin.Capabilities{
		Backend: "generic",
		Ports: []plugin.Port{
			{Name: "pf0", PCI: "0000:01:00.0", Driver: "igb", Firmware: "2.1.0", TotalVFs: 7},
			{Name: "pf1", PCI: "0000:02:00.0", Driver: "igb", Firmware: "2.1.0", TotalVFs: 7},
		},
		Reason: "igb has no VF-LAG: vflag re-homes VFs in software",
	}
	if !reflect.DeepEqual(caps, want) {
		t.Errorf("Probe =\n%+v\nwant\n%+v", caps, want)
	}
}

func TestProbeICEWithGenericNamesTheBackend(t *testing.T) {
	b := generic.New(load(t, "e810-good.yaml"))
	caps, err := b.Probe(context.Background(), plugin.BondSpec{Bond: "bond0", Ports: [2]string{"ens1f0", "ens1f1"}, VFsPerPF: 4, Mode: plugin.ModeSoftware})
	if err != nil {
		t.Fatal(err)
	}
	if caps.HardwareFollow || caps.Reason != "the generic backend does not use ice's VF-LAG (backend ice does): vflag re-homes VFs in software" {
		t.Errorf("Probe = %+v", caps)
	}
	if caps.Ports[0].Firmware != "4.40 0x8001c967 1.3534.0" {
		t.Errorf("firmware of ens1f0 = %q, want ethtool's firmware-version", caps.Ports[0].Firmware)
	}
}

func TestPreflight(t *testing.T) {
	for _, tc := range []struct {
		name, recording string
		spec            plugin.BondSpec
		want            []string
	}{
		{name: "igb set up", recording: "igb-good.yaml", spec: igbSpec(plugin.ModeSoftware)},
		{
			name: "hardware asked of igb", recording: "igb-good.yaml", spec: igbSpec(plugin.ModeHardware),
			want: []string{"fail mode bond0"},
		},
		{
			name: "too many VFs", recording: "igb-good.yaml",
			spec: plugin.BondSpec{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 8, Mode: plugin.ModeSoftware},
			want: []string{"fail total-vfs pf0", "fail num-vfs pf0", "fail total-vfs pf1", "fail num-vfs pf1"},
		},
		{
			name: "everything wrong", recording: "igb-bad.yaml", spec: igbSpec(plugin.ModeSoftware),
			want: []string{
				"warn vf-spoofchk pf0 vf 2",
				"fail num-vfs pf1", "warn carrier pf1", "fail enslaved pf1",
				"fail bond-mode bond0", "fail link-monitoring bond0",
			},
		},
		{
			name: "no such bond", recording: "igb-good.yaml", spec: plugin.BondSpec{Bond: "bond9", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 7, Mode: plugin.ModeSoftware},
			want: []string{"fail enslaved pf0", "fail enslaved pf1", "fail bond bond9"},
		},
		{
			name: "no such port", recording: "igb-good.yaml", spec: plugin.BondSpec{Bond: "bond0", Ports: [2]string{"pf0", "eth9"}, VFsPerPF: 7, Mode: plugin.ModeSoftware},
			want: []string{"fail port eth9", "warn bond-ports bond0"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := generic.New(load(t, tc.recording)).Preflight(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := problems(fs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems:\n%q\nwant\n%q\nall:\n%s", got, tc.want, render(fs))
			}
		})
	}
}

func render(fs []plugin.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// What the operator reads for the failures: the driver named, the fix
// given.
func TestPreflightMessages(t *testing.T) {
	fs, err := generic.New(load(t, "igb-good.yaml")).Preflight(context.Background(), igbSpec(plugin.ModeHardware))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fs[0].String(), "fail mode bond0: hardware mode asked for, but igb has no VF-LAG: vflag re-homes VFs in software (fix: set mode software for bond0 in vflag.yaml)"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	fs, _ = generic.New(load(t, "igb-bad.yaml")).Preflight(context.Background(), igbSpec(plugin.ModeSoftware))
	for _, want := range []string{
		"warn vf-spoofchk pf0 vf 2: pf0 vf 2 (0000:01:10.4) (MAC 52:54:00:aa:00:02) has spoof checking off: its VM can send as any MAC (fix: ip link set pf0 vf 2 spoofchk on)",
		"info vf-trust pf0 vf 3: pf0 vf 3 (0000:01:10.6) (MAC 52:54:00:aa:00:03) is trusted: right only if its VM asked for trust (fix: ip link set pf0 vf 3 trust off)",
		"fail link-monitoring bond0: bond0 has neither miimon nor an ARP monitor: it never fails over (fix: ip link set bond0 type bond miimon 100)",
		"fail enslaved pf1: pf1 is enslaved to no bond, not bond0 (fix: ip link set pf1 down && ip link set pf1 master bond0)",
	} {
		if !strings.Contains(render(fs), want+"\n") {
			t.Errorf("missing finding %q in:\n%s", want, render(fs))
		}
	}
}

func TestPrepareBond(t *testing.T) {
	ctx := context.Background()
	r := load(t, "igb-bad.yaml")
	b := generic.New(r)
	// pf1 has 2 VFs of 7: not recreated behind the operator's back.
	fs, err := b.PrepareBond(ctx, igbSpec(plugin.ModeSoftware))
	if err != nil {
		t.Fatal(err)
	}
	if got := problems(fs); !reflect.DeepEqual(got, []string{"fail num-vfs pf1"}) {
		t.Errorf("problems %q\n%s", got, render(fs))
	}
	if len(r.Log()) != 0 {
		t.Errorf("changed the host: %q", r.Log())
	}
	if err := r.SetNumVFs(ctx, "pf1", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PrepareBond(ctx, igbSpec(plugin.ModeSoftware)); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Log(), []string{"echo 0 > /sys/class/net/pf1/device/sriov_numvfs", "echo 7 > /sys/class/net/pf1/device/sriov_numvfs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
	// Idempotent: nothing more to do.
	if _, err := b.PrepareBond(ctx, igbSpec(plugin.ModeSoftware)); err != nil || len(r.Log()) != 2 {
		t.Errorf("second PrepareBond: %v, log %q", err, r.Log())
	}
	fs, err = b.PrepareBond(ctx, igbSpec(plugin.ModeHardware))
	if err != nil || plugin.Worst(fs) != plugin.SeverityFail || len(r.Log()) != 2 {
		t.Errorf("hardware PrepareBond on igb: %v, %s, log %q", err, render(fs), r.Log())
	}
}

func TestPlanVerifyReleaseVF(t *testing.T) {
	ctx := context.Background()
	r := load(t, "igb-good.yaml")
	b := generic.New(r)
	req := plugin.FailoverRequest{Bond: "bond0", From: "pf0", To: "pf1", VFs: []vfmgr.VFRef{{PF: "pf0", Index: 2}, {PF: "pf0", Index: 5}}}
	plan, err := b.PlanFailover(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := plugin.CheckPlan(req, plan); err != nil || len(plan.Hardware) != 0 {
		t.Errorf("plan %+v: %v", plan, err)
	}
	if fs, err := b.VerifyFailover(ctx, plan); err != nil || len(fs) != 0 {
		t.Errorf("VerifyFailover = %v, %v", fs, err)
	}
	plan.Hardware, plan.Software = plan.Software, nil
	if fs, _ := b.VerifyFailover(ctx, plan); plugin.Worst(fs) != plugin.SeverityFail || len(fs) != 2 {
		t.Errorf("VerifyFailover of a hardware plan on generic = %v", fs)
	}
	if err := b.ReleaseVF(ctx, "pf0", 2); err != nil {
		t.Fatal(err)
	}
	if got := r.Log(); !reflect.DeepEqual(got, []string{"ip link set pf0 vf 2 mac 00:00:00:00:00:00 vlan 0 qos 0 spoofchk on trust off"}) {
		t.Errorf("ReleaseVF ran %q", got)
	}
}

func TestBadSpec(t *testing.T) {
	b := generic.New(load(t, "igb-good.yaml"))
	for _, spec := range []plugin.BondSpec{
		{Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 1, Mode: plugin.ModeSoftware},
		{Bond: "bond0", Ports: [2]string{"pf0", "pf0"}, VFsPerPF: 1, Mode: plugin.ModeSoftware},
		{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 0, Mode: plugin.ModeSoftware},
		{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 1, Mode: "fast"},
	} {
		if _, err := b.Preflight(context.Background(), spec); !errors.Is(err, firmware.ErrBadSpec) {
			t.Errorf("Preflight(%+v) = %v, want ErrBadSpec", spec, err)
		}
	}
}
