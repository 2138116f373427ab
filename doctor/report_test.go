package doctor_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/vflag/vflag/api/cli"
	"github.com/vflag/vflag/doctor"
	"github.com/vflag/vflag/plugin"
)

func sample() doctor.Report {
	return doctor.Report{Config: "/etc/vflag/vflag.yaml", Sections: []doctor.Section{
		{Name: "host", Findings: []plugin.Finding{
			{Check: "kernel", Severity: ok, Detail: "6.12.1"},
			{Check: "iommu", Severity: fail, Detail: "no IOMMU active", Fix: "add intel_iommu=on"},
		}},
		{Name: "bond0", Findings: []plugin.Finding{
			{Check: "bond-ports", Subject: "bond0", Severity: warn, Detail: "none active", Fix: "ip link set bond0 up"},
			{Check: "vfs-in-use", Subject: "pf1", Severity: info, Detail: "no VF in use"},
		}},
	}}
}

// The table aligns check, subject and detail across sections, puts each
// fix under its detail and ends with the summary.
func TestWriteText(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	if err := sample().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	const want = `vflag doctor: /etc/vflag/vflag.yaml

host
  ok    kernel             6.12.1
  FAIL  iommu              no IOMMU active
                           fix: add intel_iommu=on

bond0
  WARN  bond-ports  bond0  none active
                           fix: ip link set bond0 up
  info  vfs-in-use  pf1    no VF in use

1 ok, 1 info, 1 warning, 1 failure
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := sample().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got doctor.JSON
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	want := doctor.JSON{
		Config: "/etc/vflag/vflag.yaml",
		Findings: []doctor.JSONFinding{
			{Section: "host", Check: "kernel", Severity: "ok", Detail: "6.12.1"},
			{Section: "host", Check: "iommu", Severity: "fail", Detail: "no IOMMU active", Fix: "add intel_iommu=on"},
			{Section: "bond0", Check: "bond-ports", Subject: "bond0", Severity: "warn", Detail: "none active", Fix: "ip link set bond0 up"},
			{Section: "bond0", Check: "vfs-in-use", Subject: "pf1", Severity: "info", Detail: "no VF in use"},
		},
		Summary: doctor.Summary{OK: 1, Info: 1, Warn: 1, Fail: 1, Worst: "fail", Exit: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	r := sample()
	if got := r.ExitCode(); got != doctor.ExitFailures {
		t.Errorf("with a failure: exit %d, want 2", got)
	}
	r.Sections = r.Sections[1:]
	if got := r.ExitCode(); got != doctor.ExitWarnings {
		t.Errorf("with a warning: exit %d, want 1", got)
	}
	r.Sections[0].Findings = r.Sections[0].Findings[1:]
	if got := r.ExitCode(); got != doctor.ExitOK {
		t.Errorf("with info only: exit %d, want 0", got)
	}
}

// vflag doctor --help documents the exit status.
func TestHelpDocumentsExitStatus(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	root := cli.New(&out, &out, nil)
	root.SetArgs([]string{"doctor", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Exit status:", "0  nothing worse than info", "1  warnings", "2  failures", "--config string", "--json"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("vflag doctor --help does not say %q:\n%s", s, out.String())
		}
	}
}
