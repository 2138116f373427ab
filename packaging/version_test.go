package packaging

import (
	"os/exec"
	"testing"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		describe, want string
	}{
		{"v1.2.0", "1.2.0"},
		{"1.2.0", "1.2.0"},
		{"v1.2.0-rc1", "1.2.0~rc1"},
		{"v1.2.0-dirty", "1.2.0+dirty"},
		{"v1.2.0-5-gabc1234", "1.2.0+git20261121.5.abc1234"},
		{"v1.2.0-5-gabc1234-dirty", "1.2.0+git20261121.5.abc1234.dirty"},
		{"v1.2.0-rc1-3-gabc1234", "1.2.0~rc1+git20261121.3.abc1234"},
		{"2319ec4", "0.0~git20261121.2319ec4"},
		{"2319ec4-dirty", "0.0~git20261121.2319ec4+dirty"},
		{"2319ec4\n", "0.0~git20261121.2319ec4"},
	}
	for _, tt := range tests {
		got, err := Version(tt.describe, "20261121")
		if err != nil || got != tt.want {
			t.Errorf("Version(%q) = %q, %v; want %q", tt.describe, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "release-1", "v", "vnext-2-gabc1234", "v1.2_0"} {
		if got, err := Version(bad, "20261121"); err == nil {
			t.Errorf("Version(%q) = %q; want an error", bad, got)
		}
	}
	if got, err := Version("v1.0", "2026-11-21"); err == nil {
		t.Errorf("Version with date 2026-11-21 = %q; want an error", got)
	}
}

// TestVersionOrder checks with dpkg itself that the versions sort as the
// commits do, so that apt upgrades from one build to the next.
func TestVersionOrder(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("no dpkg on this machine")
	}
	order := []struct{ describe, date string }{
		{"2319ec4", "20261120"},
		{"0badc0de", "20261121"},
		{"0badc0de-dirty", "20261121"},
		{"v1.0.0-rc1", "20261122"},
		{"v1.0.0-rc1-2-gabc1234", "20261123"},
		{"v1.0.0", "20261124"},
		{"v1.0.0-1-gdef5678", "20261125"},
		{"v1.0.0-1-gdef5678-dirty", "20261125"},
		{"v1.0.0-12-g1234abc", "20261126"},
		{"v1.0.1", "20261127"},
	}
	var prev string
	for _, o := range order {
		v, err := Version(o.describe, o.date)
		if err != nil {
			t.Fatal(err)
		}
		if prev != "" {
			if out, err := exec.Command(dpkg, "--compare-versions", prev, "lt", v).CombinedOutput(); err != nil {
				t.Errorf("dpkg --compare-versions %s lt %s: %v %s", prev, v, err, out)
			}
		}
		prev = v
	}
}
