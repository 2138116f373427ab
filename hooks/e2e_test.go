package hooks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/hooks"
	"github.com/vflag/vflag/internal/privtest"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/daemon"
	"github.com/vflag/vflag/vfmgr/sriov"
	"github.com/vflag/vflag/vfmgr/store"
)

// These tests run the hook binary as libvirt does (built from
// cmd/vflag-hook, four arguments, the XML on stdin, an environment with
// nothing but PATH and the settings file) against a real vflagd: its API
// server on a socket in a temporary directory, its daemon on an in-memory
// kernel (bond0 over pf0 0000:01:00.0 and pf1 0000:02:00.0, four VFs each,
// 0000:0N:10.0-3) and a real store.

var (
	buildOnce sync.Once
	buildDir  string
	hookBin   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// hookBinary builds cmd/vflag-hook once, as `make build` does.
func hookBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		buildDir, buildErr = os.MkdirTemp("", "vflag-hook-test-")
		if buildErr != nil {
			return
		}
		hookBin = filepath.Join(buildDir, "vflag")
		cmd := exec.Command(goTool, "build", "-o", hookBin, "github.com/vflag/vflag/cmd/vflag-hook")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/vflag-hook: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return hookBin
}

// host is what the hook binary runs against: its settings file, sysfs
// tree and vflagd socket.
type host struct {
	dir      string
	socket   string
	settings string
	sysfs    string
	bin      string
}

// newHost writes settings (extra is appended, YAML) pointing at a socket
// nobody listens on yet.
func newHost(t *testing.T, extra string) *host {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the hook binary (not in -short)")
	}
	dir := t.TempDir()
	h := &host{dir: dir, socket: filepath.Join(dir, "vflag.sock"), settings: filepath.Join(dir, "hook.yaml"), bin: hookBinary(t)}
	// This host's NICs: bond0 over pf0 (0000:01:00.0) and pf1
	// (0000:02:00.0), eight VFs each (vflagd uses four); ens5f0 in no bond.
	var pfs []hooks.TestPF
	for i, name := range []string{"pf0", "pf1"} {
		pf := hooks.TestPF{PCI: fmt.Sprintf("0000:0%d:00.0", i+1), Name: name, Master: "bond0"}
		for v := range 8 {
			pf.VFs = append(pf.VFs, fmt.Sprintf("0000:0%d:10.%d", i+1, v))
		}
		pfs = append(pfs, pf)
	}
	pfs = append(pfs, hooks.TestPF{PCI: "0000:05:00.0", Name: "ens5f0", VFs: []string{"0000:05:10.1"}})
	h.sysfs = hooks.MakeTestSysfs(t, pfs)
	h.writeSettings(t, extra)
	return h
}

func (h *host) writeSettings(t *testing.T, extra string) {
	t.Helper()
	s := fmt.Sprintf("socket: %s\nsysfs: %s\nsyslog: false\n%s", h.socket, h.sysfs, extra)
	if err := os.WriteFile(h.settings, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// result is what a run of the hook binary left.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the hook binary for domain and op with xml on stdin.
func (h *host) run(domain, op string, xml []byte) result {
	return h.runIn(domain, op, bytes.NewReader(xml))
}

func (h *host) runIn(domain, op string, stdin io.Reader) result {
	// A guard against a hook that never ends, not a timing assertion: the
	// hook's own bound is its timeout setting. Failures of the harness
	// come back as exit -1, for the caller's (sub)test to report.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	extra := "-"
	if op == "release" {
		extra = "shutdown"
	}
	cmd := exec.CommandContext(ctx, h.bin, domain, op, map[string]string{"release": "end", "stopped": "end"}[op]+orBegin(op), extra)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", hooks.ConfigEnv + "=" + h.settings}
	cmd.Stdin = stdin
	cmd.WaitDelay = time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return result{code: -1, stderr: "test harness: the hook did not exit; its stderr: " + errb.String()}
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return result{code: -1, stderr: "test harness: " + err.Error()}
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func orBegin(op string) string {
	if op == "release" || op == "stopped" {
		return ""
	}
	return "begin"
}

// ok checks that the hook succeeded, printed nothing on stdout and no
// error.
func (r result) ok(t *testing.T, what string) {
	t.Helper()
	if r.code != 0 || r.stdout != "" || r.stderr != "" && !strings.Contains(r.stderr, "vflag: warning: ") {
		t.Errorf("%s: exit %d, stdout %q, stderr %q; want success and nothing printed", what, r.code, r.stdout, r.stderr)
	}
}

// fails checks that the hook failed with one line on stderr saying want,
// and printed nothing on stdout.
func (r result) fails(t *testing.T, what, want string) {
	t.Helper()
	if r.code == 0 || r.stdout != "" || !strings.HasPrefix(r.stderr, "vflag: ") || !strings.Contains(r.stderr, want) ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("%s: exit %d, stdout %q, stderr %q; want a failure with one line saying %q", what, r.code, r.stdout, r.stderr, want)
	}
}

// TestHookBinaryWithoutVflagd covers what needs no vflagd: VMs that are
// none of vflag's, broken input, vflagd down or hung.
func TestHookBinaryWithoutVflagd(t *testing.T) {
	h := newHost(t, "timeout: 2s\n")
	t.Run("no vflag interface, vflagd down: nothing happens", func(t *testing.T) {
		for _, file := range []string{"bridge.xml", "direct-macvtap.xml", "vhostuser.xml", "virt-manager-nat.xml", "no-devices.xml"} {
			x := hooks.ReadTestdata(t, file)
			d, err := hooks.Parse(x, hooks.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range []string{"prepare", "start", "started", "stopped", "release", "migrate", "restore", "reconnect"} {
				r := h.run(d.Name, op, x)
				r.ok(t, file+" "+op)
				if r.stderr != "" {
					t.Errorf("%s %s: stderr %q", file, op, r.stderr)
				}
			}
		}
	})
	t.Run("a hostdev on no bond port is not vflag's", func(t *testing.T) {
		x := []byte(`<domain type='kvm'><name>gpu</name><devices><interface type='hostdev' managed='yes'><mac address='52:54:00:05:05:05'/>` +
			`<source><address type='pci' domain='0' bus='5' slot='0x10' function='1'/></source></interface></devices></domain>`)
		h.run("gpu", "prepare", x).ok(t, "prepare")
	})
	t.Run("malformed XML", func(t *testing.T) {
		h.run("web1", "prepare", []byte("<domain type='kvm'><name>web1</name><devices><interface type='network'>")).
			fails(t, "truncated", "cannot start VM web1: domain XML on stdin: XML syntax error")
		h.run("web1", "start", []byte("")).fails(t, "empty", "cannot start VM web1: domain XML on stdin")
		h.run("web1", "migrate", []byte("<network><name>vflag-bond0</name></network>")).
			fails(t, "a network", "cannot accept the incoming migration of VM web1: domain XML on stdin")
	})
	t.Run("two interfaces with one MAC", func(t *testing.T) {
		h.run("twins", "prepare", hooks.ReadTestdata(t, "dup-mac.xml")).
			fails(t, "dup-mac", "cannot start VM twins: interfaces 0 and 1 have the same MAC 52:54:00:99:99:99")
	})
	t.Run("vflagd down: the start fails, readably", func(t *testing.T) {
		r := h.run("web1", "start", hooks.ReadTestdata(t, "virt-install-pool-live.xml"))
		r.fails(t, "start", "cannot start VM web1: interface 0 (MAC 52:54:00:6b:3c:01, VF 0000:01:10.2): vflagd is not running (no socket at "+h.socket+"); start vflagd")
		r = h.run("web1", "prepare", hooks.ReadTestdata(t, "virt-install-pool.xml"))
		r.fails(t, "prepare", "vflagd is not running")
	})
	t.Run("vflagd down, a stale socket", func(t *testing.T) {
		l, err := net.Listen("unix", h.socket)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		defer os.Remove(h.socket)
		h.run("web1", "start", hooks.ReadTestdata(t, "virt-install-pool-live.xml")).
			fails(t, "stale", "vflagd is not running ("+h.socket+" refuses connections)")
	})
	t.Run("vflagd hung: the hook gives up on its own", func(t *testing.T) {
		// A socket that accepts and never says a word.
		l, err := net.Listen("unix", h.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var conns []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		}()
		h.run("web1", "start", hooks.ReadTestdata(t, "virt-install-pool-live.xml")).
			fails(t, "hung", "vflagd at "+h.socket+" did not answer within 2s")
	})
	t.Run("stdin never closed: the hook gives up on its own", func(t *testing.T) {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		defer pw.Close()
		if _, err := pw.Write([]byte("<domain type='kvm'>")); err != nil {
			t.Fatal(err)
		}
		h.runIn("web1", "prepare", pr).fails(t, "stdin", "stdin did not deliver the domain XML before the timeout")
	})
	t.Run("fail_open: the VM starts without vflag", func(t *testing.T) {
		h.writeSettings(t, "timeout: 2s\nfail_open: true\n")
		defer h.writeSettings(t, "timeout: 2s\n")
		r := h.run("web1", "start", hooks.ReadTestdata(t, "virt-install-pool-live.xml"))
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "vflag: warning: start: ") ||
			!strings.Contains(r.stderr, "VM web1 goes on WITHOUT vflag") {
			t.Errorf("exit %d, stdout %q, stderr %q; want success with a warning", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("reconnect never fails: libvirt would kill the VM", func(t *testing.T) {
		r := h.run("web1", "reconnect", hooks.ReadTestdata(t, "virt-install-pool-live.xml"))
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "vflagd is not running") {
			t.Errorf("exit %d, stdout %q, stderr %q; want success with a warning", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("broken settings fail only vflag's VMs", func(t *testing.T) {
		h.writeSettings(t, "fail_opne: true\n")
		defer h.writeSettings(t, "timeout: 2s\n")
		r := h.run("plain-bridge", "prepare", hooks.ReadTestdata(t, "bridge.xml"))
		if r.code != 0 || r.stdout != "" {
			t.Errorf("bridge VM: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		h.run("web1", "prepare", hooks.ReadTestdata(t, "virt-install-pool.xml")).
			fails(t, "web1", "hook settings "+h.settings+": line 4: unknown key fail_opne")
	})
}

// hostdevXML is a domain with one hostdev interface.
func hostdevXML(name, mac, pci string, vlan int) []byte {
	var f [4]uint64
	if _, err := fmt.Sscanf(pci, "%x:%x:%x.%x", &f[0], &f[1], &f[2], &f[3]); err != nil {
		panic("hostdevXML: bad PCI address " + pci)
	}
	v := ""
	if vlan != 0 {
		v = fmt.Sprintf("<vlan><tag id='%d'/></vlan>", vlan)
	}
	return fmt.Appendf(nil, `<domain type='kvm'><name>%s</name><devices><interface type='hostdev' managed='yes'><mac address='%s'/>`+
		`<source><address type='pci' domain='%#x' bus='%#x' slot='%#x' function='%#x'/></source>%s</interface></devices></domain>`,
		name, mac, f[0], f[1], f[2], f[3], v)
}

// vflagd is a real vflagd API on an in-memory kernel.
type vflagd struct {
	kernel *memKernel
	client *api.Client
}

// startVflagd serves vflagd's API on h's socket.
func startVflagd(t *testing.T, h *host) *vflagd {
	t.Helper()
	privtest.Root(t) // the API admits root and its group only
	k := newMemKernel()
	st, err := store.Open(filepath.Join(h.dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := daemon.New(daemon.Options{
		Bonds: []daemon.BondConfig{{
			Name: "bond0", PFs: [2]string{"pf0", "pf1"}, VFsPerPF: 4, Policy: vfmgr.ActiveFirst,
		}},
		Kernel: k, BondCtl: memBonds{}, Store: st,
	})
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	srv, err := api.Listen(api.SocketConfig{Path: h.socket, Group: "nosuchgroup-vflag"}, d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(srv.Stop)
	c, err := api.Dial(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	k.takeCalls()
	return &vflagd{kernel: k, client: c}
}

// vms renders what vflagd holds, one interface a line:
// "web1 52:54:00:6b:3c:01 vlan 100 pf0 vf 2 (0000:01:10.2) mode hotswap".
func (v *vflagd) vms(t *testing.T) string {
	t.Helper()
	r, err := v.client.ListVMs(context.Background(), &vflagpb.ListVMsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range r.GetInterfaces() {
		out = append(out, fmt.Sprintf("%s %s vlan %d %s vf %d (%s) mode %s", i.GetVm(), i.GetMac(), i.GetVlan(), i.GetPf(), i.GetVf(), i.GetVfPci(), i.GetMode()))
	}
	return linesOf(out)
}

func linesOf(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "\n") + "\n"
}

// TestHookBinaryWithVflagd runs VM lifecycles through the hook binary and
// checks what vflagd holds and what the kernel's VFs carry after each step.
func TestHookBinaryWithVflagd(t *testing.T) {
	t.Run("pool network: prepare, start, release", func(t *testing.T) {
		h := newHost(t, "")
		v := startVflagd(t, h)
		h.run("web1", "prepare", hooks.ReadTestdata(t, "virt-install-pool.xml")).ok(t, "prepare")
		hooks.Diff(t, "VMs after prepare", v.vms(t), "")
		h.run("web1", "start", hooks.ReadTestdata(t, "virt-install-pool-live.xml")).ok(t, "start")
		hooks.Diff(t, "VMs after start", v.vms(t), "web1 52:54:00:6b:3c:01 vlan 100 pf0 vf 2 (0000:01:10.2) mode adopt\n")
		hooks.Diff(t, "VFs after start", v.kernel.vfsText(), "pf0 vf 2 mac 52:54:00:6b:3c:01 vlan 100 qos 0 spoofchk on trust off\n")
		h.run("web1", "started", hooks.ReadTestdata(t, "virt-install-pool-live.xml")).ok(t, "started")
		h.run("web1", "reconnect", hooks.ReadTestdata(t, "virt-install-pool-live.xml")).ok(t, "reconnect")
		hooks.Diff(t, "kernel calls up to reconnect", v.kernel.takeCalls(), "configure pf0 vf 2 mac 52:54:00:6b:3c:01 vlan 100 qos 0 spoofchk on trust off\n")
		h.run("web1", "stopped", hooks.ReadTestdata(t, "virt-install-pool-live.xml")).ok(t, "stopped")
		h.run("web1", "release", hooks.ReadTestdata(t, "virt-install-pool.xml")).ok(t, "release")
		hooks.Diff(t, "VMs after release", v.vms(t), "")
		hooks.Diff(t, "VFs after release", v.kernel.vfsText(), "")
		hooks.Diff(t, "kernel calls of release", v.kernel.takeCalls(), "reset pf0 vf 2\n")
		h.run("web1", "release", hooks.ReadTestdata(t, "virt-install-pool.xml")).ok(t, "a second release")
	})
	t.Run("prepare: a pool network of a bond vflagd does not manage", func(t *testing.T) {
		h := newHost(t, "")
		startVflagd(t, h)
		x := bytes.ReplaceAll(hooks.ReadTestdata(t, "virt-install-pool.xml"), []byte("vflag-bond0"), []byte("vflag-bond9"))
		h.run("web1", "prepare", x).fails(t, "bond9", "vflagd manages no bond bond9 (it manages: bond0)")
	})
	t.Run("Nova hostdev with VLAN, adopted unchanged", func(t *testing.T) {
		h := newHost(t, "default_mode: adopt\n")
		v := startVflagd(t, h)
		x := hooks.ReadTestdata(t, "nova-hostdev-vlan.xml")
		h.run("instance-0000002a", "prepare", x).ok(t, "prepare")
		h.run("instance-0000002a", "start", x).ok(t, "start")
		hooks.Diff(t, "VMs", v.vms(t), "instance-0000002a fa:16:3e:2b:7c:91 vlan 100 pf1 vf 1 (0000:02:10.1) mode adopt\n")
		hooks.Diff(t, "VFs", v.kernel.vfsText(), "pf1 vf 1 mac fa:16:3e:2b:7c:91 vlan 100 qos 0 spoofchk on trust off\n")
		hooks.Diff(t, "kernel calls: configured once", v.kernel.takeCalls(), "configure pf1 vf 1 mac fa:16:3e:2b:7c:91 vlan 100 qos 0 spoofchk on trust off\n")
	})
	t.Run("a VF another VM holds", func(t *testing.T) {
		h := newHost(t, "")
		v := startVflagd(t, h)
		h.run("db7", "start", hostdevXML("db7", "52:54:00:00:00:07", "0000:01:10.3", 0)).ok(t, "db7")
		before := v.kernel.vfsText()
		h.run("web1", "start", hostdevXML("web1", "52:54:00:6b:3c:01", "0000:01:10.3", 100)).
			fails(t, "web1", "cannot start VM web1: interface 0 (MAC 52:54:00:6b:3c:01, VF 0000:01:10.3): vflagd refuses to attach: attach web1: adopt VF 0000:01:10.3 for web1/52:54:00:6b:3c:01: pf0 vf 3 (0000:01:10.3) is held by db7/52:54:00:00:00:07")
		hooks.Diff(t, "VMs", v.vms(t), "db7 52:54:00:00:00:07 vlan 0 pf0 vf 3 (0000:01:10.3) mode adopt\n")
		hooks.Diff(t, "VFs: db7's untouched", v.kernel.vfsText(), before)
		// libvirt runs the release hook of the failed start: db7 keeps its VF.
		h.run("web1", "release", hostdevXML("web1", "52:54:00:6b:3c:01", "0000:01:10.3", 100)).ok(t, "release of the failed start")
		hooks.Diff(t, "VMs after the release", v.vms(t), "db7 52:54:00:00:00:07 vlan 0 pf0 vf 3 (0000:01:10.3) mode adopt\n")
		hooks.Diff(t, "VFs after the release", v.kernel.vfsText(), before)
	})
	t.Run("a hostdev that is no VF of a managed PF is left alone", func(t *testing.T) {
		h := newHost(t, "")
		v := startVflagd(t, h)
		// 0000:01:10.6 is a VF of pf0, a port of bond0, but not one of the
		// four vflagd uses; 0000:05:10.1 is on no bond port.
		h.run("batch7", "prepare", hostdevXML("batch7", "52:54:00:a1:b2:c3", "0000:01:10.6", 0)).ok(t, "0000:01:10.6")
		h.run("batch7", "prepare", hostdevXML("batch7", "52:54:00:a1:b2:c3", "0000:05:10.1", 0)).ok(t, "0000:05:10.1")
		h.run("batch7", "release", hostdevXML("batch7", "52:54:00:a1:b2:c3", "0000:01:10.6", 0)).ok(t, "release")
		hooks.Diff(t, "VMs", v.vms(t), "")
		hooks.Diff(t, "kernel calls", v.kernel.takeCalls(), "")
		h.writeSettings(t, "unmanaged_hostdev: error\n")
		h.run("batch7", "prepare", hostdevXML("batch7", "52:54:00:a1:b2:c3", "0000:01:10.6", 0)).
			fails(t, "strict, bond port", "adopt VF 0000:01:10.6 for batch7/52:54:00:a1:b2:c3: not a VF vflag uses on bond0 (pf0 0000:01:00.0, pf1 0000:02:00.0)")
		h.run("batch7", "prepare", hostdevXML("batch7", "52:54:00:a1:b2:c3", "0000:05:10.1", 0)).
			fails(t, "strict, no bond", "interface 0 (MAC 52:54:00:a1:b2:c3, VF 0000:05:10.1) is not a VF of a bond port, and "+h.settings+" says unmanaged_hostdev: error")
	})
	t.Run("names with shell metacharacters and non-ASCII", func(t *testing.T) {
		h := newHost(t, "")
		v := startVflagd(t, h)
		x := hooks.ReadTestdata(t, "multi.xml")
		name := "router-ü;$(id)"
		h.run(name, "prepare", x).ok(t, "prepare")
		hooks.Diff(t, "VMs", v.vms(t), name+" 52:54:00:77:00:04 vlan 20 pf1 vf 0 (0000:02:10.0) mode adopt\n")
		hooks.Diff(t, "VFs", v.kernel.vfsText(), "pf1 vf 0 mac 52:54:00:77:00:04 vlan 20 qos 0 spoofchk on trust off\n")
		h.run(name, "release", x).ok(t, "release")
		hooks.Diff(t, "VMs after release", v.vms(t), "")
		hooks.Diff(t, "VFs after release", v.kernel.vfsText(), "")
		// A name libvirt would not pass: refused before vflagd sees it.
		bad := "bad\nname"
		h.run(bad, "prepare", bytes.ReplaceAll(x, []byte(name), []byte(bad))).fails(t, "newline", `domain name "bad\nname" contains control characters`)
		hooks.Diff(t, "kernel calls", v.kernel.takeCalls(), "configure pf1 vf 0 mac 52:54:00:77:00:04 vlan 20 qos 0 spoofchk on trust off\nreset pf1 vf 0\n")
	})
	t.Run("configuring the VF fails: nothing half done", func(t *testing.T) {
		h := newHost(t, "")
		v := startVflagd(t, h)
		v.kernel.failOn("configure pf0 vf 2")
		h.run("web1", "start", hooks.ReadTestdata(t, "virt-install-pool-live.xml")).fails(t, "start", "vflagd refuses to attach: attach web1: configure pf0 vf 2 mac 52:54:00:6b:3c:01 vlan 100 qos 0 spoofchk on trust off: injected failure")
		hooks.Diff(t, "VMs", v.vms(t), "")
		hooks.Diff(t, "VFs", v.kernel.vfsText(), "")
	})
	t.Run("migrate: the XML names a VF of this host, stdout is XML only", func(t *testing.T) {
		h := newHost(t, "")
		v := startVflagd(t, h)
		in := hooks.ReadTestdata(t, "metadata-hotswap.xml")
		r := h.run("cache3", "migrate", in)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("migrate: exit %d, stderr %q", r.code, r.stderr)
		}
		d, err := hooks.Parse([]byte(r.stdout), hooks.Options{})
		if err != nil || d.Check() != nil || len(d.Vflag()) != 1 {
			t.Fatalf("stdout is not the domain XML: %v\n%s", err, r.stdout)
		}
		// vflagd's policy: the lowest free VF of the active PF.
		if got := d.Vflag()[0].PCI; got != "0000:01:10.0" {
			t.Errorf("rewritten to %s, want 0000:01:10.0", got)
		}
		hooks.Diff(t, "the rest of the XML", strings.Replace(r.stdout, "bus='0x01' slot='0x10' function='0x0'", "bus='0x01' slot='0x10' function='0x1'", 1), string(in))
		hooks.Diff(t, "VMs", v.vms(t), "cache3 52:54:00:c0:ff:ee vlan 300 pf0 vf 0 (0000:01:10.0) mode hotswap\n")
		// libvirt then runs prepare and start with the new XML.
		out := []byte(r.stdout)
		h.run("cache3", "prepare", out).ok(t, "prepare")
		h.run("cache3", "start", out).ok(t, "start")
		hooks.Diff(t, "VMs after start", v.vms(t), "cache3 52:54:00:c0:ff:ee vlan 300 pf0 vf 0 (0000:01:10.0) mode hotswap\n")
		hooks.Diff(t, "VFs", v.kernel.vfsText(), "pf0 vf 0 mac 52:54:00:c0:ff:ee vlan 300 qos 0 spoofchk on trust off\n")
	})
	t.Run("migrate: a pool interface needs no rewrite", func(t *testing.T) {
		h := newHost(t, "")
		v := startVflagd(t, h)
		h.run("web1", "migrate", hooks.ReadTestdata(t, "virt-install-pool.xml")).ok(t, "migrate")
		hooks.Diff(t, "VMs", v.vms(t), "")
	})
	t.Run("restore with no free VF: refused, nothing held", func(t *testing.T) {
		h := newHost(t, "")
		v := startVflagd(t, h)
		for n := range 8 {
			if _, err := v.client.Attach(context.Background(), &vflagpb.AttachRequest{Vm: fmt.Sprintf("vm%d", n), Mac: fmt.Sprintf("52:54:00:00:00:%02x", n+1)}); err != nil {
				t.Fatal(err)
			}
		}
		before := v.vms(t)
		h.run("cache3", "restore", hooks.ReadTestdata(t, "metadata-hotswap.xml")).fails(t, "restore", "cannot restore VM cache3: interface 0 (MAC 52:54:00:c0:ff:ee, VF 0000:01:10.1): vflagd refuses to attach")
		hooks.Diff(t, "VMs", v.vms(t), before)
	})
}

// memKernel is an in-memory SR-IOV kernel for vflagd: pf0 and pf1, ports
// of bond0, eight VFs each; ConfigureVF sets a VF's settings all at once
// or not at all (the real one rolls back its own steps).
type memKernel struct {
	// mu guards everything below.
	mu    sync.Mutex
	pfs   map[string]vfmgr.PF
	vfs   map[string][]vfmgr.VF
	calls []string
	fail  []string
}

var _ daemon.Kernel = (*memKernel)(nil)

func newMemKernel() *memKernel {
	k := &memKernel{pfs: map[string]vfmgr.PF{}, vfs: map[string][]vfmgr.VF{}}
	for i, name := range []string{"pf0", "pf1"} {
		k.pfs[name] = vfmgr.PF{
			Name: name, PCI: fmt.Sprintf("0000:0%d:00.0", i+1), Driver: "igb", Bond: "bond0",
			TotalVFs: 8, NumVFs: 8, Carrier: true,
		}
		for v := range 8 {
			k.vfs[name] = append(k.vfs[name], vfmgr.VF{PF: name, Index: v, PCI: fmt.Sprintf("0000:0%d:10.%d", i+1, v), SpoofChk: true})
		}
	}
	return k
}

func (k *memKernel) failOn(prefix string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = append(k.fail, prefix)
}

func (k *memKernel) call(c string) error {
	if slices.ContainsFunc(k.fail, func(p string) bool { return strings.HasPrefix(c, p) }) {
		k.calls = append(k.calls, c+" (failed)")
		return fmt.Errorf("%s: injected failure", c)
	}
	k.calls = append(k.calls, c)
	return nil
}

func (k *memKernel) takeCalls() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := linesOf(k.calls)
	k.calls = nil
	return s
}

// vfsText renders the VFs that carry a MAC.
func (k *memKernel) vfsText() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, pf := range []string{"pf0", "pf1"} {
		for _, v := range k.vfs[pf] {
			if len(v.MAC) > 0 {
				cfg := sriov.VFConfig{MAC: v.MAC, VLAN: v.VLAN, QoS: v.QoS, SpoofChk: v.SpoofChk, Trust: v.Trust}
				out = append(out, fmt.Sprintf("%s vf %d %s", pf, v.Index, cfg))
			}
		}
	}
	return linesOf(out)
}

// PF implements daemon.Kernel.
func (k *memKernel) PF(_ context.Context, name string) (vfmgr.PF, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	pf, ok := k.pfs[name]
	if !ok {
		return vfmgr.PF{}, fmt.Errorf("PF %s: no such network interface", name)
	}
	return pf, nil
}

// VFs implements daemon.Kernel.
func (k *memKernel) VFs(_ context.Context, pf string) ([]vfmgr.VF, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.vfs[pf]), nil
}

// SetNumVFs implements daemon.Kernel.
func (k *memKernel) SetNumVFs(context.Context, string, int) error {
	return fmt.Errorf("set sriov_numvfs: the test host has its VFs")
}

// ConfigureVF implements daemon.Kernel.
func (k *memKernel) ConfigureVF(_ context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.call(fmt.Sprintf("configure %s vf %d %s", pf, idx, cfg)); err != nil {
		return err
	}
	v := &k.vfs[pf][idx]
	v.MAC, v.VLAN, v.QoS, v.SpoofChk, v.Trust = slices.Clone(cfg.MAC), cfg.VLAN, cfg.QoS, cfg.SpoofChk, cfg.Trust
	return nil
}

// ResetVF implements daemon.Kernel.
func (k *memKernel) ResetVF(_ context.Context, pf string, idx int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.call(fmt.Sprintf("reset %s vf %d", pf, idx)); err != nil {
		return err
	}
	v := &k.vfs[pf][idx]
	v.MAC, v.VLAN, v.QoS, v.SpoofChk, v.Trust = nil, 0, 0, true, false
	return nil
}

// memBonds is bond0 with pf0 active.
type memBonds struct{}

func (memBonds) Active(context.Context, string) (string, error) { return "pf0", nil }
func (memBonds) SetActive(context.Context, string, string) error {
	return fmt.Errorf("set active: not in this test")
}
