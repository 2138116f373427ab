package packaging

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// newRoot makes a throwaway root for dpkg --root: an empty dpkg database,
// merged /usr like Debian 12, /dev/null, and the programs the maintainer scripts run
// (dpkg runs them chrooted into the root), copied with their shared
// libraries. systemctl comes along when the machine has it: it enables
// units without a running systemd. It reports whether it did.
func newRoot(t *testing.T) (root string, systemctl bool) {
	t.Helper()
	root = t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	// Shell redirections need /dev/null, as on any host.
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatalf("mknod /dev/null in the throwaway root: %v", err)
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, prog := range []string{"sh", "rm", "mkdir", "rmdir", "systemctl"} {
		p, err := exec.LookPath(prog)
		if err != nil {
			if prog == "systemctl" {
				return root, false
			}
			t.Fatalf("the maintainer scripts need %s: %v", prog, err)
		}
		copyProgram(t, root, p, "/usr/bin/"+prog)
	}
	return root, true
}

// copyProgram copies the program at src into root at dst, with the
// shared libraries ldd names at their paths.
func copyProgram(t *testing.T, root, src, dst string) {
	t.Helper()
	copyFile(t, src, filepath.Join(root, dst))
	out, err := exec.Command("ldd", src).Output()
	if err != nil {
		return // static
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				copyFile(t, f, filepath.Join(root, f))
			}
		}
	}
}

// copyFile copies src (following symlinks) to dst with its mode.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// exists reports whether name exists in root (not following a last
// symlink).
func exists(t *testing.T, root, name string) bool {
	t.Helper()
	_, err := os.Lstat(filepath.Join(root, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// read returns the file name in root.
func read(t *testing.T, root, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The package's files, and the link `systemctl enable vflagd` makes.
const (
	hookPath   = "/etc/libvirt/hooks/qemu.d/vflag"
	enableLink = "/etc/systemd/system/multi-user.target.wants/vflagd.service"
)

var programs = []string{
	"/usr/sbin/vflagd", "/usr/bin/vflag", hookPath, "/lib/systemd/system/vflagd.service",
	"/usr/lib/vflag/backends/vflag-backend-generic", "/usr/lib/vflag/backends/vflag-backend-generic.sha256",
	"/usr/lib/vflag/backends/vflag-backend-ice", "/usr/lib/vflag/backends/vflag-backend-ice.sha256",
	"/usr/lib/vflag/backends/vflag-backend-mlx5", "/usr/lib/vflag/backends/vflag-backend-mlx5.sha256",
}

// checkInstall installs the package into a throwaway root with dpkg,
// then removes, reinstalls, upgrades and purges it, checking at each
// step what an operator would find.
func checkInstall(t *testing.T, deb, bins string) {
	root, systemctl := newRoot(t)
	if !systemctl {
		t.Log("no systemctl on this machine: the enable/disable checks are left out")
	}
	dpkg := func(args ...string) string {
		t.Helper()
		return mustRun(t, "dpkg", append([]string{"--root=" + root, "--force-depends"}, args...)...)
	}
	status := func() string {
		out, _ := run(t, "dpkg", "--root="+root, "-s", "vflag")
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "Status: ") || strings.HasPrefix(line, "dpkg-query: ") {
				return line
			}
		}
		return out
	}

	// Install: no vflag.yaml yet, so vflagd is enabled but not started.
	out := dpkg("-i", deb)
	for _, want := range []string{
		"vflag: vflagd is enabled but not started: write /etc/vflag/vflag.yaml (start from /etc/vflag/vflag.yaml.example)",
		"vflag: restart libvirt",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dpkg -i says nothing like %q:\n%s", want, out)
		}
	}
	if got := status(); got != "Status: install ok installed" {
		t.Fatalf("after dpkg -i: %s", got)
	}
	if out, err := run(t, "dpkg", "--root="+root, "--verify", "vflag"); err != nil || out != "" {
		t.Errorf("dpkg --verify vflag: %v\n%s", err, out)
	}
	for _, p := range programs {
		if !exists(t, root, p) {
			t.Errorf("after dpkg -i: no %s", p)
		}
	}
	st, err := os.Stat(filepath.Join(root, hookPath))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); !st.Mode().IsRegular() || st.Mode().Perm() != 0o755 || sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("installed hook %s: mode %v, owner %d:%d; want a 0755 file of root:root", hookPath, st.Mode(), sys.Uid, sys.Gid)
	}
	for _, b := range []string{"generic", "ice", "mlx5"} {
		p := "/usr/lib/vflag/backends/vflag-backend-" + b
		sum := sha256.Sum256([]byte(read(t, root, p)))
		if want := hex.EncodeToString(sum[:]) + "  vflag-backend-" + b + "\n"; read(t, root, p+".sha256") != want {
			t.Errorf("%s.sha256 = %q; want %q (sha256sum's format)", p, read(t, root, p+".sha256"), want)
		}
		if read(t, root, p) != read(t, bins, "vflag-backend-"+b) {
			t.Errorf("%s is not the binary that was built", p)
		}
	}
	if systemctl {
		if dst, err := os.Readlink(filepath.Join(root, enableLink)); err != nil || dst != "/lib/systemd/system/vflagd.service" {
			t.Errorf("after dpkg -i: %s -> %q, %v; want vflagd enabled", enableLink, dst, err)
		}
	}
	checkInstalledHook(t, root)

	// The operator writes the configuration, edits the hook's settings,
	// and vflagd keeps state.
	edited := read(t, root, "/etc/vflag/hook.yaml") + "# edited by the operator\n"
	for name, data := range map[string]string{
		"/etc/vflag/vflag.yaml":   read(t, root, "/etc/vflag/vflag.yaml.example"),
		"/etc/vflag/hook.yaml":    edited,
		"/var/lib/vflag/state.db": "allocations",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Remove: the programs go, configuration and state stay.
	dpkg("-r", "vflag")
	if got := status(); got != "Status: deinstall ok config-files" {
		t.Errorf("after dpkg -r: %s", got)
	}
	for _, p := range append(programs, enableLink) {
		if exists(t, root, p) {
			t.Errorf("after dpkg -r: %s is still there", p)
		}
	}
	for _, p := range []string{"/etc/vflag/vflag.yaml.example", "/etc/vflag/vflag.yaml", "/var/lib/vflag/state.db"} {
		if !exists(t, root, p) {
			t.Errorf("after dpkg -r: %s is gone; remove keeps configuration and state", p)
		}
	}
	if read(t, root, "/etc/vflag/hook.yaml") != edited {
		t.Error("after dpkg -r: the operator's hook.yaml changed")
	}

	// Reinstall: enabled again (remove disabled it), the edit kept.
	out = dpkg("-i", deb)
	if strings.Contains(out, "not started") {
		t.Errorf("dpkg -i with /etc/vflag/vflag.yaml present still says vflagd is not started:\n%s", out)
	}
	if systemctl && !exists(t, root, enableLink) {
		t.Error("after reinstalling: vflagd is not enabled again")
	}
	if read(t, root, "/etc/vflag/hook.yaml") != edited {
		t.Error("after reinstalling: the operator's hook.yaml was replaced")
	}

	// Upgrade: an operator who disabled vflagd keeps it disabled.
	if systemctl {
		mustRun(t, "chroot", root, "systemctl", "disable", "vflagd.service")
	}
	newer, err := Build(context.Background(), Options{BinDir: bins, OutDir: t.TempDir(), Version: "1.2.4", Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	out = dpkg("-i", newer)
	if strings.Contains(out, "restart libvirt") {
		t.Errorf("an upgrade asks to restart libvirt (the hook was already there):\n%s", out)
	}
	if systemctl && exists(t, root, enableLink) {
		t.Error("the upgrade enabled vflagd, which the operator had disabled")
	}
	if v := mustRun(t, "dpkg-query", "--root="+root, "-W", "-f=${Version}", "vflag"); v != "1.2.4" {
		t.Errorf("after the upgrade: version %q; want 1.2.4", v)
	}

	// Purge: nothing of vflag's is left.
	dpkg("-P", "vflag")
	if got := status(); !strings.Contains(got, "not installed") && !strings.Contains(got, "not-installed") {
		t.Errorf("after dpkg -P: %s", got)
	}
	for _, p := range append(programs, enableLink, "/etc/vflag", "/var/lib/vflag", "/usr/lib/vflag") {
		if exists(t, root, p) {
			t.Errorf("after dpkg -P: %s is still there", p)
		}
	}
}

// checkInstalledHook runs the installed hook as libvirt would, with the
// installed hook.yaml: a VM with a hostdev interface not on a vflag bond
// starts (unmanaged_hostdev: ignore); a VM on a vflag pool network does
// not while vflagd is down (fail_open: false) and is told why.
func checkInstalledHook(t *testing.T, root string) {
	t.Helper()
	hook := func(xml string) (stdout, stderr string, err error) {
		cmd := exec.Command(filepath.Join(root, hookPath), "vm1", "prepare", "begin", "-")
		cmd.Env = append(os.Environ(), "VFLAG_HOOK_CONFIG="+filepath.Join(root, "/etc/vflag/hook.yaml"))
		cmd.Stdin = strings.NewReader(xml)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	const head = `<domain type='kvm'><name>vm1</name><uuid>6c3d9a2e-1f4b-4c5d-8e7f-0a1b2c3d4e5f</uuid>` +
		`<memory unit='MiB'>512</memory><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>`
	stdout, stderr, err := hook(head + `<interface type='hostdev' managed='yes'><mac address='52:54:00:6b:3c:01'/>` +
		`<source><address type='pci' domain='0x0000' bus='0x7f' slot='0x1f' function='0x7'/></source></interface></devices></domain>`)
	if err != nil || stdout != "" {
		t.Errorf("installed hook, VM with an unmanaged hostdev: %v, stdout %q, stderr %q; want success and no output", err, stdout, stderr)
	}
	if _, err := os.Stat("/run/vflag/vflag.sock"); err == nil {
		t.Log("a vflagd listens on /run/vflag/vflag.sock on this machine: the vflagd-down check is left out")
		return
	}
	_, stderr, err = hook(head + `<interface type='network'><mac address='52:54:00:6b:3c:02'/>` +
		`<source network='vflag-bond0'/></interface></devices></domain>`)
	if err == nil || !strings.Contains(stderr, "vflagd is not running") || !strings.Contains(stderr, "fail_open") {
		t.Errorf("installed hook, VM on vflag-bond0 with vflagd down: %v, stderr %q; want a failure saying vflagd is not running", err, stderr)
	}
}
