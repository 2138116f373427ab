package doctor_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vflag/vflag/api/cli"
	"github.com/vflag/vflag/doctor"
	"github.com/vflag/vflag/internal/privtest"
)

// TestBareHost runs the real `vflag doctor` on this machine's own file
// system and kernel with a configuration that does not exist, as on a
// host where nothing is set up yet: each missing piece is named with its
// fix, and the exit status says failures. What the host has (an IOMMU,
// libvirt, vfio-pci) is looked up independently and must be reported as
// there; CI machines and this one have none of it.
func TestBareHost(t *testing.T) {
	privtest.Root(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc", "vflag.yaml")
	sock := filepath.Join(dir, "vflag.sock")

	var out, errOut bytes.Buffer
	root := cli.New(&out, &errOut, nil)
	root.SetArgs([]string{"doctor", "--config", cfg, "--socket", sock, "--json"})
	err := root.Execute()
	var rep doctor.JSON
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("vflag doctor --json printed no JSON (%v):\n%s", jerr, out.String())
	}
	t.Logf("vflag doctor --json: %s", rep.Summary)
	if got := cli.ExitCode(err); got != doctor.ExitFailures || rep.Summary.Exit != doctor.ExitFailures {
		t.Errorf("exit status %d (summary says %d), want 2: the configuration is missing", got, rep.Summary.Exit)
	}
	get := func(check, subject string) doctor.JSONFinding {
		t.Helper()
		for _, f := range rep.Findings {
			if f.Check == check && f.Subject == subject {
				return f
			}
		}
		t.Fatalf("no %s finding on %q in:\n%s", check, subject, out.String())
		return doctor.JSONFinding{}
	}
	expect := func(f doctor.JSONFinding, sev, detail, fix string) {
		t.Helper()
		if f.Severity != sev || !strings.Contains(f.Detail, detail) || !strings.Contains(f.Fix, fix) {
			t.Errorf("%s %s: %s %q (fix %q), want %s saying %q with a fix saying %q", f.Check, f.Subject, f.Severity, f.Detail, f.Fix, sev, detail, fix)
		}
	}

	expect(get(doctor.CheckConfig, cfg), "fail", "no such file", "> "+cfg)
	rel, rerr := os.ReadFile("/proc/sys/kernel/osrelease")
	if rerr != nil {
		t.Fatal(rerr)
	}
	expect(get(doctor.CheckKernel, ""), "ok", strings.TrimSpace(string(rel)), "")
	expect(get(doctor.CheckVflagd, sock), "fail", "vflagd is not running: no socket file", "systemctl start vflagd")

	groups, _ := os.ReadDir("/sys/kernel/iommu_groups")
	units, _ := os.ReadDir("/sys/class/iommu")
	if len(groups)+len(units) == 0 {
		expect(get(doctor.CheckIOMMU, ""), "fail", "no IOMMU active", "iommu=on")
	} else {
		expect(get(doctor.CheckIOMMU, ""), "ok", "active", "")
	}

	libvirt := ""
	for _, name := range []string{"libvirtd", "virtqemud"} {
		for _, p := range []string{name, "/usr/sbin/" + name, "/sbin/" + name} {
			if _, lerr := exec.LookPath(p); lerr == nil && libvirt == "" {
				libvirt = name
			}
		}
	}
	if libvirt == "" {
		expect(get(doctor.CheckLibvirt, "libvirtd"), "fail", "neither libvirtd nor virtqemud is installed", "apt-get install libvirt-daemon-system")
	} else {
		expect(get(doctor.CheckLibvirt, libvirt), "ok", "libvirt ", "")
	}

	if _, serr := os.Stat(doctor.HookPath); os.IsNotExist(serr) {
		expect(get(doctor.CheckHook, doctor.HookPath), "fail", "not installed", "install -D -m 0755")
	}

	_, loaded := os.Stat("/sys/module/vfio_pci")
	_, bound := os.Stat("/sys/bus/pci/drivers/vfio-pci")
	if loaded == nil || bound == nil {
		expect(get(doctor.CheckModule, "vfio-pci"), "ok", "loaded", "")
	} else if _, derr := os.Stat("/lib/modules/" + strings.TrimSpace(string(rel))); os.IsNotExist(derr) {
		expect(get(doctor.CheckModule, "vfio-pci"), "fail", "not loaded, and there is no /lib/modules/", "CONFIG_VFIO_PCI")
	}

	// Without a configuration there is nothing per bond to say.
	for _, f := range rep.Findings {
		if f.Section != doctor.SectionConfig && f.Section != doctor.SectionHost {
			t.Errorf("finding in section %s without a configuration: %+v", f.Section, f)
		}
	}

	// The table names the same, each failure with its fix.
	out.Reset()
	root = cli.New(&out, &errOut, nil)
	root.SetArgs([]string{"doctor", "--config", cfg, "--socket", sock})
	err = root.Execute()
	t.Logf("vflag doctor:\n%s", out.String())
	if cli.ExitCode(err) != doctor.ExitFailures || !strings.Contains(err.Error(), "doctor: ") {
		t.Errorf("vflag doctor: error %v, want exit status 2 with the summary", err)
	}
	text := out.String()
	for _, f := range rep.Findings {
		if f.Severity == "fail" && (!strings.Contains(text, "FAIL  "+f.Check) || !strings.Contains(text, "fix: "+f.Fix)) {
			t.Errorf("the table does not show failing %s with its fix %q", f.Check, f.Fix)
		}
	}
}
