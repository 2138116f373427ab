package plugin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// These tests run real backend processes: this test binary, serving a
// fakeBackend (see TestMain).

// logBuf collects a Client's log, safe for the goroutines that write it
// after a test ends.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// fakeConfig runs this test binary as backend "fake" in mode ("ok" for
// plain), with its checksum in the configuration.
func fakeConfig(t testing.TB, mode string, env ...string) (Config, *logBuf) {
	path, sum := self(t)
	lb := &logBuf{}
	return Config{
		Name: "fake", Path: path, SHA256: sum,
		Log: slog.New(slog.NewTextHandler(lb, nil)),
		env: append([]string{"VFLAG_TEST_BACKEND=" + mode}, env...),
	}, lb
}

func launch(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantErr(t *testing.T, what string, err error, is []error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	for _, e := range is {
		if !errors.Is(err, e) {
			t.Errorf("%s: %q does not wrap %v", what, err, e)
		}
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: %q does not say %q", what, err, s)
		}
	}
}

func TestProcessCalls(t *testing.T) {
	cfg, lb := fakeConfig(t, "ok")
	c := launch(t, cfg)
	ctx := context.Background()
	mac := net.HardwareAddr{0x52, 0x54, 0, 0xab, 0, 2}
	if err := c.ConfigureVF(ctx, "pf1", 3, sriov.VFConfig{MAC: mac, VLAN: 7, SpoofChk: true}); err != nil {
		t.Fatal(err)
	}
	vfs, err := c.VFs(ctx, "pf1")
	if err != nil {
		t.Fatal(err)
	}
	if got := vfs[3]; got.MAC.String() != mac.String() || got.VLAN != 7 || !got.SpoofChk {
		t.Errorf("pf1 vf 3 after ConfigureVF: %+v", got)
	}
	// What the backend logs lands in vflagd's log at its level, named.
	if err := c.ReleaseVF(ctx, "pf1", 3); err != nil {
		t.Fatal(err)
	}
	const logged = `level=WARN msg="VF released" backend=fake pf=pf1 vf=3 plugin=`
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(lb.String(), logged); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the backend's log line is not in vflagd's log:\n%s", lb)
		}
	}
	err = c.ReleaseVF(ctx, "pf0", 9)
	wantErr(t, "ReleaseVF of a VF the PF does not have", err, []error{fs.ErrNotExist},
		"backend fake: ReleaseVF: release pf0 (0000:01:00.0) vf 9: 4 VFs: file does not exist")
}

func TestChecksumMismatchRefused(t *testing.T) {
	cfg, _ := fakeConfig(t, "ok")
	want := strings.Repeat("ab", 32)
	_, sum := self(t)
	cfg.SHA256 = want
	_, err := Launch(context.Background(), cfg)
	wantErr(t, "Launch with the wrong checksum", err, []error{ErrChecksum},
		"backend fake: "+cfg.Path+" has sha256 "+sum+", but the configuration says "+want+"; not running it")
}

func TestChecksumFile(t *testing.T) {
	cfg, _ := fakeConfig(t, "ok")
	self, sum := self(t)
	cfg.Path, cfg.SHA256 = filepath.Join(t.TempDir(), "vflag-backend-fake"), ""
	if err := os.Symlink(self, cfg.Path); err != nil {
		t.Fatal(err)
	}
	_, err := Launch(context.Background(), cfg)
	wantErr(t, "Launch without a checksum", err, []error{ErrChecksum, fs.ErrNotExist},
		"backend fake: no checksum for "+cfg.Path, "install "+cfg.Path+".sha256 beside it, or set backends.fake.sha256")

	write := func(s string) {
		if err := os.WriteFile(cfg.Path+".sha256", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wrong := strings.Repeat("0", 64)
	write(wrong + "  vflag-backend-fake\n")
	_, err = Launch(context.Background(), cfg)
	wantErr(t, "Launch with a wrong .sha256", err, []error{ErrChecksum},
		cfg.Path+" has sha256 "+sum+", but "+cfg.Path+".sha256 says "+wrong)

	write("not-a-sum\n")
	_, err = Launch(context.Background(), cfg)
	wantErr(t, "Launch with a garbled .sha256", err, []error{ErrChecksum}, `"not-a-sum" from `+cfg.Path+".sha256 is not a SHA-256")

	write(sum + "  vflag-backend-fake\n")
	c := launch(t, cfg)
	if _, err := c.Info(context.Background()); err != nil {
		t.Errorf("Info with the right .sha256: %v", err)
	}
}

func TestMissingBinary(t *testing.T) {
	cfg, _ := fakeConfig(t, "ok")
	cfg.Path = filepath.Join(t.TempDir(), "vflag-backend-fake")
	_, err := Launch(context.Background(), cfg)
	wantErr(t, "Launch of a missing binary", err, []error{fs.ErrNotExist}, "backend fake: ", cfg.Path, "set backends.fake.path")
}

func TestOtherProtocolVersionRefused(t *testing.T) {
	cfg, _ := fakeConfig(t, "ok", "VFLAG_TEST_BACKEND_VERSION=2")
	_, err := Launch(context.Background(), cfg)
	wantErr(t, "Launch of a version 2 backend", err, []error{ErrProtocol},
		"backend fake: "+cfg.Path+" speaks backend protocol version 2, this vflagd speaks 1")
}

func TestWrongNameRefused(t *testing.T) {
	cfg, _ := fakeConfig(t, "ok", "VFLAG_TEST_BACKEND_NAME=ice")
	_, err := Launch(context.Background(), cfg)
	wantErr(t, "Launch of backend ice as fake", err, nil, `backend fake: `+cfg.Path+` answers as backend "ice"`)
}

func TestPlanOutOfBoundsRejected(t *testing.T) {
	cfg, _ := fakeConfig(t, "bad-plan")
	c := launch(t, cfg)
	req := FailoverRequest{Bond: "bond0", From: "pf0", To: "pf1", VFs: []vfmgr.VFRef{{PF: "pf0", Index: 0}}}
	plan, err := c.PlanFailover(context.Background(), req)
	wantErr(t, "a plan that touches pf1 vf 5", err, []error{ErrPlanOutOfBounds},
		"backend fake: PlanFailover: plan touches pf1 vf 5, which is not in use on pf0")
	if len(plan.Hardware)+len(plan.Software) != 0 {
		t.Errorf("the rejected plan came back: %+v", plan)
	}
}

// restarts returns an OnRestart that counts into a channel.
func restarts() (func(), <-chan struct{}) {
	ch := make(chan struct{}, 10)
	return func() { ch <- struct{}{} }, ch
}

func waitRestart(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("OnRestart was not called")
	}
}

func TestHangingBackendTimesOut(t *testing.T) {
	cfg, lb := fakeConfig(t, "hang")
	cfg.CallTimeout = 300 * time.Millisecond
	var hook <-chan struct{}
	cfg.OnRestart, hook = restarts()
	c := launch(t, cfg)
	pid := c.PID()
	err := c.ConfigureVF(context.Background(), "pf0", 1, sriov.VFConfig{})
	wantErr(t, "ConfigureVF on a hanging backend", err, []error{ErrTimeout, context.DeadlineExceeded},
		"backend fake: ConfigureVF did not answer within 300ms (pid "+strconv.Itoa(pid)+" killed; restarted on the next call)")
	// The next call gets a new process, and the daemon its hook.
	if _, err := c.VFs(context.Background(), "pf0"); err != nil {
		t.Fatalf("VFs after the timeout: %v", err)
	}
	waitRestart(t, hook)
	if c.PID() == pid || c.PID() == 0 {
		t.Errorf("backend pid %d after the restart, was %d", c.PID(), pid)
	}
	if !processGone(pid, 30*time.Second) {
		t.Errorf("the hung backend (pid %d) still runs", pid)
	}
	if !strings.Contains(lb.String(), "ConfigureVF timed out") {
		t.Errorf("the log does not say why the backend was lost:\n%s", lb)
	}
}

func TestKilledBackendRestarted(t *testing.T) {
	cfg, _ := fakeConfig(t, "crash")
	var hook <-chan struct{}
	cfg.OnRestart, hook = restarts()
	c := launch(t, cfg)
	ctx := context.Background()
	if err := c.ConfigureVF(ctx, "pf0", 2, sriov.VFConfig{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}

	// kill -9 between calls: the next call restarts it.
	pid := c.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid, 30*time.Second) {
		t.Fatalf("pid %d survived SIGKILL", pid)
	}
	if _, err := c.PF(ctx, "pf0"); err != nil {
		t.Fatalf("PF after kill -9 of the backend: %v", err)
	}
	waitRestart(t, hook)
	if c.PID() == pid {
		t.Errorf("still pid %d after the restart", pid)
	}

	// A call that crashes the backend: it is tried once more on a new
	// process, crashes that one too, and fails naming the backend and
	// method; the next call runs on a third process.
	pid = c.PID()
	err := c.ConfigureVF(ctx, "pf0", 13, sriov.VFConfig{})
	wantErr(t, "ConfigureVF that crashes the backend", err, []error{ErrExited},
		"backend fake: ConfigureVF: the backend process (pid ", ") went away")
	waitRestart(t, hook)
	if !processGone(pid, 30*time.Second) {
		t.Errorf("pid %d still runs after it crashed", pid)
	}
	if _, err := c.VFs(ctx, "pf0"); err != nil {
		t.Fatalf("VFs after the crash: %v", err)
	}
	waitRestart(t, hook)
}

func TestClosedClient(t *testing.T) {
	cfg, _ := fakeConfig(t, "ok")
	c := launch(t, cfg)
	pid := c.PID()
	c.Close()
	_, err := c.Info(context.Background())
	wantErr(t, "Info after Close", err, []error{ErrClosed}, "backend fake")
	if !processGone(pid, 30*time.Second) {
		t.Errorf("backend pid %d still runs after Close", pid)
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{cfg: Config{MaxBackoff: time.Second}}
	var got []string
	for n := range 8 {
		c.crashes = n
		got = append(got, c.backoff().String())
	}
	if want := "0s 0s 100ms 200ms 400ms 800ms 1s 1s"; strings.Join(got, " ") != want {
		t.Errorf("waits after 0..7 failures: %s, want %s", strings.Join(got, " "), want)
	}
}

// TestBackendOutlivesNoDaemon runs this test binary as a stand-in vflagd
// that launches a backend, kills that vflagd with SIGKILL, and checks the
// backend goes too.
func TestBackendOutlivesNoDaemon(t *testing.T) {
	path, _ := self(t)
	cmd := exec.Command(path, "-test.run=^TestStandInDaemon$")
	cmd.Env = append(os.Environ(), "VFLAG_TEST_DAEMON=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var backend int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "backend pid "); ok {
			backend, _ = strconv.Atoi(s)
			break
		}
	}
	if backend == 0 {
		t.Fatal("the stand-in vflagd did not report its backend")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !processGone(backend, 30*time.Second) {
		_ = syscall.Kill(backend, syscall.SIGKILL)
		t.Fatalf("backend pid %d still runs after its vflagd was killed", backend)
	}
}

// TestStandInDaemon is the vflagd of TestBackendOutlivesNoDaemon: it
// launches a backend, prints its pid and waits to be killed.
func TestStandInDaemon(t *testing.T) {
	if os.Getenv("VFLAG_TEST_DAEMON") != "1" {
		t.Skip("run by TestBackendOutlivesNoDaemon")
	}
	cfg, _ := fakeConfig(t, "ok")
	c := launch(t, cfg)
	fmt.Fprintln(os.Stdout, "backend pid", c.PID())
	select {}
}

// processGone waits up to d for pid to be gone (or a zombie: its parent
// has not reaped it yet).
func processGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if f := strings.Fields(string(data)); len(f) > 2 && f[2] == "Z" {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
