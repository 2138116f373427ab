package firmware_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/firmware/generic"
	"github.com/vflag/vflag/firmware/ice"
	"github.com/vflag/vflag/firmware/mlx5"
	"github.com/vflag/vflag/firmware/nicview"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// guestEnv makes this test binary, copied into a testbed host, run the
// backends against that host's real kernel (see guestMain) instead of the
// tests: the testbed guest has no Go toolchain and no backend binary of
// its own, so the test carries its own.
const guestEnv = "VFLAG_FIRMWARE_GUEST"

func TestMain(m *testing.M) {
	if mode := os.Getenv(guestEnv); mode != "" {
		os.Exit(guestMain(mode))
	}
	os.Exit(m.Run())
}

// guestReport is what guestMain prints for "report": each backend's
// answers for bond0 over pf0 and pf1 with 7 VFs per port.
type guestReport struct {
	Backend            string
	Caps               plugin.Capabilities
	ProbeErr           string
	Software           []plugin.Finding
	Hardware           []plugin.Finding
	PrepareHardware    []plugin.Finding
	PrepareErr         string
	PlanFromPrimary    plugin.FailoverPlan
	NumVFsAfterPrepare [2]int
}

// guestVFs is what guestMain prints for "vf": pf0's VF 3 before, after a
// ConfigureVF and after a ReleaseVF, through the generic backend.
type guestVFs struct {
	Before, Configured, Released vfmgr.VF
}

func guestMain(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host := &nicview.Host{}
	var out any
	switch mode {
	case "report":
		var reps []guestReport
		for _, b := range []plugin.Backend{generic.New(host), ice.New(host), mlx5.New(host)} {
			reps = append(reps, guestRun(ctx, b, host))
		}
		out = reps
	case "vf":
		b := generic.New(host)
		vf3 := func() vfmgr.VF {
			vfs, err := b.VFs(ctx, "pf0")
			if err != nil || len(vfs) < 4 {
				fmt.Fprintln(os.Stderr, "VFs of pf0:", err)
				os.Exit(1)
			}
			return vfs[3]
		}
		var r guestVFs
		r.Before = vf3()
		mac, _ := net.ParseMAC("02:00:5e:10:00:03")
		if err := b.ConfigureVF(ctx, "pf0", 3, sriov.VFConfig{MAC: mac, VLAN: 42, SpoofChk: true}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		r.Configured = vf3()
		if err := b.ReleaseVF(ctx, "pf0", 3); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		r.Released = vf3()
		out = r
	default:
		fmt.Fprintln(os.Stderr, "unknown", guestEnv, mode)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func guestRun(ctx context.Context, b plugin.Backend, host *nicview.Host) guestReport {
	info, _ := b.Info(ctx)
	spec := plugin.BondSpec{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 7, Mode: plugin.ModeSoftware}
	r := guestReport{Backend: info.Name}
	var err error
	if r.Caps, err = b.Probe(ctx, spec); err != nil {
		r.ProbeErr = err.Error()
	}
	r.Software, _ = b.Preflight(ctx, spec)
	spec.Mode = plugin.ModeHardware
	r.Hardware, _ = b.Preflight(ctx, spec)
	if r.PrepareHardware, err = b.PrepareBond(ctx, spec); err != nil {
		r.PrepareErr = err.Error()
	}
	r.PlanFromPrimary, _ = b.PlanFailover(ctx, plugin.FailoverRequest{
		Bond: "bond0", From: "pf0", To: "pf1", VFs: []vfmgr.VFRef{{PF: "pf0", Index: 0}},
	})
	for i, name := range spec.Ports {
		if pf, err := host.PF(ctx, name); err == nil {
			r.NumVFsAfterPrepare[i] = pf.NumVFs
		}
	}
	return r
}

// TestBackendsOnIgb runs the three backends in a testbed host against
// its real igb ports (the answers are the kernel's, not recorded): the
// generic backend's software preflight is clean and turns to the true
// failures when the bond loses its link monitoring or a VF its spoof
// checking; ice and mlx5 refuse hardware mode naming igb and the missing
// devlink/private flag, change nothing, and plan every VF in software;
// ConfigureVF and ReleaseVF go through to the PF.
func TestBackendsOnIgb(t *testing.T) {
	if testing.Short() {
		t.Skip("testbed tier: not in -short mode")
	}
	tb := testenv.ForTest(t, testenv.HostSpec{Name: "kvm1"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(cmd string) string {
		t.Helper()
		out, err := tb.MustExec(ctx, "kvm1", cmd)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	pushTestBinary(ctx, t, tb)
	report := func() map[string]guestReport {
		t.Helper()
		var reps []guestReport
		if err := json.Unmarshal([]byte(run(guestEnv+"=report /tmp/firmware.test")), &reps); err != nil {
			t.Fatal(err)
		}
		m := map[string]guestReport{}
		for _, r := range reps {
			m[r.Backend] = r
		}
		return m
	}

	reps := report()
	for _, name := range []string{"generic", "ice", "mlx5"} {
		r := reps[name]
		t.Logf("%s on the real igb: %+v\nhardware preflight:\n%sprepare:\n%s", name, r.Caps, render(r.Hardware), render(r.PrepareHardware))
	}
	gen := reps["generic"]
	if gen.ProbeErr != "" || gen.Caps.HardwareFollow || gen.Caps.Reason != "igb has no VF-LAG: vflag re-homes VFs in software" {
		t.Errorf("generic Probe: %+v %s", gen.Caps, gen.ProbeErr)
	}
	for i, p := range gen.Caps.Ports {
		pci := strings.TrimSpace(run("basename $(readlink /sys/class/net/pf" + fmt.Sprint(i) + "/device)"))
		if p.Driver != "igb" || p.TotalVFs != 7 || p.PCI != pci {
			t.Errorf("generic Probe port %d = %+v, want igb, 7 VFs, %s", i, p, pci)
		}
		if fw := ethtoolField(run("ethtool -i pf"+fmt.Sprint(i)+" 2>/dev/null || true"), "firmware-version"); fw != "" && fw != p.Firmware {
			t.Errorf("port %d firmware %q, ethtool -i says %q", i, p.Firmware, fw)
		}
	}
	if got := problems(gen.Software); len(got) != 0 {
		t.Errorf("generic software preflight on the testbed's bond0: %q\n%s", got, render(gen.Software))
	}
	if got := problems(gen.Hardware); len(got) != 1 || got[0] != "fail mode bond0" || !strings.Contains(render(gen.Hardware), "igb has no VF-LAG") {
		t.Errorf("generic hardware preflight: %q", got)
	}

	for _, name := range []string{"ice", "mlx5"} {
		r := reps[name]
		if r.Caps.HardwareFollow || !strings.Contains(r.Caps.Reason, "pf0 (") || !strings.Contains(r.Caps.Reason, "is driven by igb, not ") {
			t.Errorf("%s Probe on igb: %+v", name, r.Caps)
		}
		hw := render(r.Hardware)
		for _, want := range []string{"fail driver pf0: pf0 (", "is driven by igb, not "} {
			if !strings.Contains(hw, want) {
				t.Errorf("%s hardware preflight lacks %q:\n%s", name, want, hw)
			}
		}
		// igb registers no devlink instance: the real kernel's answer.
		if !strings.Contains(hw, "fail eswitch-mode pf0:") || !strings.Contains(hw, nicview.ErrNoDevlink.Error()) {
			t.Errorf("%s: no eswitch-mode failure naming the missing devlink instance:\n%s", name, hw)
		}
		if r.PrepareErr != "" || plugin.Worst(r.PrepareHardware) != plugin.SeverityFail || r.NumVFsAfterPrepare != [2]int{7, 7} {
			t.Errorf("%s PrepareBond on igb: %v, VFs %v after\n%s", name, r.PrepareErr, r.NumVFsAfterPrepare, render(r.PrepareHardware))
		}
		if len(r.PlanFromPrimary.Hardware) != 0 || len(r.PlanFromPrimary.Software) != 1 {
			t.Errorf("%s plan on igb: %+v", name, r.PlanFromPrimary)
		}
	}
	if hw := render(reps["ice"].Hardware); !strings.Contains(hw, "fail lldp-agent pf0: pf0 (driver igb) has no fw-lldp-agent private flag") {
		t.Errorf("ice: no LLDP finding from igb's real private flags:\n%s", hw)
	}
	if hw := render(reps["mlx5"].Hardware); !strings.Contains(hw, "lag bond0") {
		t.Errorf("mlx5: no LAG finding:\n%s", hw)
	}

	// The per-VF settings through the PF, read back over rtnetlink.
	var vfs guestVFs
	if err := json.Unmarshal([]byte(run(guestEnv+"=vf /tmp/firmware.test")), &vfs); err != nil {
		t.Fatal(err)
	}
	if c := vfs.Configured; c.MAC.String() != "02:00:5e:10:00:03" || c.VLAN != 42 || !c.SpoofChk {
		t.Errorf("after ConfigureVF: %+v", c)
	}
	if r := vfs.Released; len(r.MAC) != 0 || r.VLAN != 0 || !r.SpoofChk || r.Trust {
		t.Errorf("after ReleaseVF: %+v", r)
	}
	// Break the bond's link monitoring and a used VF's spoof checking:
	// the software preflight must say exactly that.
	run("ip link set bond0 type bond miimon 0 && ip link set pf0 vf 2 mac 02:00:5e:10:00:02 spoofchk off")
	gen = report()["generic"]
	t.Logf("software preflight with miimon 0 and pf0 vf 2 spoofchk off:\n%s", render(gen.Software))
	if got := problems(gen.Software); strings.Join(got, ",") != "warn vf-spoofchk pf0 vf 2,fail link-monitoring bond0" {
		t.Errorf("after breaking miimon and spoofchk: %q\n%s", got, render(gen.Software))
	}
}

// ethtoolField returns a field of `ethtool -i` output.
func ethtoolField(out, field string) string {
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// pushTestBinary builds this test binary statically and writes it to
// /tmp/firmware.test in kvm1, gzipped and base64-encoded in chunks small
// enough for one argument of a guest shell command.
func pushTestBinary(ctx context.Context, t *testing.T, tb *testenv.Testbed) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "firmware.test")
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "-ldflags=-s -w", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the guest test binary: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString(gz.Bytes())
	const chunk = 96 << 10 // below MAX_ARG_STRLEN (128 KiB) of `sh -c`
	if _, err := tb.MustExec(ctx, "kvm1", "rm -f /tmp/firmware.b64"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(enc); i += chunk {
		part := enc[i:min(i+chunk, len(enc))]
		if _, err := tb.MustExec(ctx, "kvm1", "printf %s "+part+" >> /tmp/firmware.b64"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.MustExec(ctx, "kvm1", "busybox base64 -d /tmp/firmware.b64 | busybox gunzip > /tmp/firmware.test && chmod +x /tmp/firmware.test && rm /tmp/firmware.b64"); err != nil {
		t.Fatal(err)
	}
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
