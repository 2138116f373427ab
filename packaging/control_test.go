package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestControl(t *testing.T) {
	c := Control{Version: "1.0", Arch: "amd64", Maintainer: DefaultMaintainer, InstalledSize: 42, Depends: []string{"libc6 (>= 2.34)"}}
	got := c.String()
	for _, want := range []string{
		"Package: vflag\n", "Version: 1.0\n", "Architecture: amd64\n", "Installed-Size: 42\n",
		"Depends: libc6 (>= 2.34)\n", "Recommends: libvirt-daemon-system, libvirt0, qemu-system-x86\n",
		"Suggests: rdma-core\n", "\nDescription: keep VMs",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("control lacks %q:\n%s", want, got)
		}
	}
	// Static binaries: no Depends line at all (an empty one is invalid).
	c.Depends = nil
	if got := c.String(); strings.Contains(got, "Depends:") {
		t.Errorf("control of static binaries has a Depends field:\n%s", got)
	}
	// deb-control(5): continuation lines start with a space; none is empty.
	for i, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if line == "" || (line[0] != ' ' && !strings.Contains(line, ": ")) {
			t.Errorf("control line %d %q is neither a field nor a continuation", i+1, line)
		}
	}
}

// TestInspect reads real binaries of this machine: dash (dynamically
// linked against libc only), busybox (static), systemctl (links more than
// libc: the package must not silently depend on it).
func TestInspect(t *testing.T) {
	dynamic, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	d, err := Inspect([]string{dynamic})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Depends) != 1 || !regexp.MustCompile(`^libc6 \(>= 2\.[0-9]+(\.[0-9]+)?\)$`).MatchString(d.Depends[0]) || d.Arch == "" {
		t.Errorf("Inspect(%s) = %+v; want libc6 (>= 2.N) and an architecture", dynamic, d)
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		d, err := Inspect([]string{"/bin/busybox"})
		if err != nil || len(d.Depends) != 0 {
			t.Errorf("Inspect(static busybox) = %+v, %v; want no Depends", d, err)
		}
	}
	if _, err := os.Stat("/usr/bin/systemctl"); err == nil {
		if _, err := Inspect([]string{dynamic, "/usr/bin/systemctl"}); err == nil || !strings.Contains(err.Error(), "systemctl links lib") {
			t.Errorf("Inspect(systemctl) error = %v; want one naming the library beyond libc", err)
		}
	}
	if _, err := Inspect([]string{"testdata-missing"}); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("Inspect(missing file) error = %v; want one saying to run make build", err)
	}
	if _, err := Inspect([]string{"doc.go"}); err == nil {
		t.Error("Inspect(doc.go) succeeded; want an error")
	}
}
