package packaging

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vflag/vflag/internal/privtest"
)

// buildBinaries builds the package's programs into a temporary directory
// as `make build` does, vflagd with cgo (it loads libvirt.so.0 at run
// time), the others static.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	goBuild := func(cgo string, args ...string) {
		cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, args...)...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
	}
	goBuild("0", "./cmd/vflag", "./cmd/vflag-hook", "./cmd/vflag-backend-generic", "./cmd/vflag-backend-ice", "./cmd/vflag-backend-mlx5")
	goBuild("1", "-tags", "libvirt_dlopen", "./cmd/vflagd")
	return dir
}

// run runs a command and returns its combined output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// mustRun is run that fails the test on an error.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// entry is one line of dpkg-deb --contents.
type entry struct{ mode, owner string }

// TestDebianPackage builds the package from freshly built binaries, looks
// at it with dpkg-deb as an operator would, and installs, removes,
// reinstalls, upgrades and purges it with dpkg in a throwaway root.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and the package (about 30 s); not in -short")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("no dpkg-deb on this machine")
	}
	bins := buildBinaries(t)
	out := t.TempDir()
	ctx := context.Background()
	// none: xz takes a minute for 130 MB; the contents are the same.
	deb, err := Build(ctx, Options{BinDir: bins, OutDir: out, Version: "1.2.3", Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "vflag_1.2.3_"+runtime.GOARCH+".deb"); deb != want {
		t.Errorf("Build wrote %s; want %s", deb, want)
	}
	checkFields(t, deb)
	checkContents(t, deb)
	checkControlArchive(t, deb)
	checkUnitVerify(t, deb)
	t.Run("install", func(t *testing.T) {
		privtest.Root(t) // dpkg --root runs the maintainer scripts chrooted
		checkInstall(t, deb, bins)
	})
}

// checkFields checks dpkg-deb --field: what apt shows and resolves.
func checkFields(t *testing.T, deb string) {
	t.Helper()
	fields := map[string]string{}
	var last string
	for _, line := range strings.Split(mustRun(t, "dpkg-deb", "--field", deb), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
			fields[k], last = v, k
		} else if last != "" && line != "" {
			fields[last] += "\n" + line
		}
	}
	for k, want := range map[string]string{
		"Package": "vflag", "Version": "1.2.3", "Architecture": runtime.GOARCH,
		"Recommends": "libvirt-daemon-system, libvirt0, qemu-system-x86", "Suggests": "rdma-core",
	} {
		if fields[k] != want {
			t.Errorf("dpkg-deb --field %s = %q; want %q", k, fields[k], want)
		}
	}
	// vflagd is built with cgo: it needs the C library, nothing else.
	if !regexp.MustCompile(`^libc6 \(>= 2\.[0-9]+\)$`).MatchString(fields["Depends"]) {
		t.Errorf("Depends = %q; want libc6 (>= 2.N)", fields["Depends"])
	}
	for _, k := range []string{"Maintainer", "Installed-Size", "Description"} {
		if fields[k] == "" {
			t.Errorf("dpkg-deb --field: no %s", k)
		}
	}
	info := mustRun(t, "dpkg-deb", "--info", deb)
	for _, member := range []string{"conffiles", "control", "md5sums", "postinst", "prerm", "postrm"} {
		if !regexp.MustCompile(`(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*?\s+` + member + `\b`).MatchString(info) {
			t.Errorf("dpkg-deb --info lists no control member %s:\n%s", member, info)
		}
	}
}

// checkContents checks dpkg-deb --contents: every path, its mode and
// owner, and nothing else.
func checkContents(t *testing.T, deb string) {
	t.Helper()
	got := map[string]entry{}
	for _, line := range strings.Split(strings.TrimSpace(mustRun(t, "dpkg-deb", "--contents", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb --contents line %q", line)
		}
		got[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = entry{f[0], f[1]}
	}
	const exe, data = "-rwxr-xr-x", "-rw-r--r--"
	want := map[string]string{
		"/usr/sbin/vflagd":                                     exe,
		"/usr/bin/vflag":                                       exe,
		"/etc/libvirt/hooks/qemu.d/vflag":                      exe,
		"/etc/vflag/hook.yaml":                                 data,
		"/etc/vflag/vflag.yaml.example":                        data,
		"/lib/systemd/system/vflagd.service":                   data,
		"/usr/lib/vflag/backends/vflag-backend-generic":        exe,
		"/usr/lib/vflag/backends/vflag-backend-generic.sha256": data,
		"/usr/lib/vflag/backends/vflag-backend-ice":            exe,
		"/usr/lib/vflag/backends/vflag-backend-ice.sha256":     data,
		"/usr/lib/vflag/backends/vflag-backend-mlx5":           exe,
		"/usr/lib/vflag/backends/vflag-backend-mlx5.sha256":    data,
	}
	for p, mode := range want {
		if e, ok := got[p]; !ok || e.mode != mode || e.owner != "root/root" {
			t.Errorf("dpkg-deb --contents %s = %+v; want %s root/root", p, e, mode)
		}
	}
	for p, e := range got {
		if _, ok := want[p]; ok {
			continue
		}
		if e.mode != "drwxr-xr-x" || e.owner != "root/root" {
			t.Errorf("dpkg-deb --contents has %s %+v; want only the package's files and drwxr-xr-x root/root directories", p, e)
		}
	}
}

// checkControlArchive extracts the control archive: the conffiles, and
// the maintainer scripts as dpkg will run them.
func checkControlArchive(t *testing.T, deb string) {
	t.Helper()
	dir := t.TempDir()
	mustRun(t, "dpkg-deb", "--control", deb, dir)
	conf, err := os.ReadFile(filepath.Join(dir, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Fields(string(conf)), []string{"/etc/vflag/hook.yaml", "/etc/vflag/vflag.yaml.example"}; !slices.Equal(got, want) {
		t.Errorf("conffiles = %q; want %q", got, want)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(dir, s)
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, mode %v; want 0755", s, err, st.Mode())
		}
		if out, err := run(t, "sh", "-n", p); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
	}
}

// checkUnitVerify runs systemd-analyze verify on the unit as the package
// installs it, the machine's own units beside it (in /usr/local, so none
// of them shadows the package's): it must pass without a word.
func checkUnitVerify(t *testing.T, deb string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("no systemd-analyze on this machine: TestUnit checked the unit's keys only")
		return
	}
	root := t.TempDir()
	mustRun(t, "dpkg-deb", "-x", deb, root)
	units := filepath.Join(root, "usr/local/lib/systemd/system")
	if err := os.MkdirAll(units, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "cp", "-a", "/lib/systemd/system/.", units)
	if out, err := run(t, "systemd-analyze", "verify", "--root="+root, "/lib/systemd/system/vflagd.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify vflagd.service: %v\n%s", err, out)
	}
}
