package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// Dir is where vflag's packages install the backend binaries.
const Dir = "/usr/lib/vflag/backends"

// DefaultPath is where the backend called name is installed:
// Dir/vflag-backend-<name>, with its SHA-256 in <path>.sha256.
func DefaultPath(name string) string { return filepath.Join(Dir, "vflag-backend-"+name) }

// Defaults of Config.
const (
	// DefaultCallTimeout bounds a call (SetNumVFs and PrepareBond excepted).
	DefaultCallTimeout = 10 * time.Second
	// DefaultSlowCallTimeout bounds SetNumVFs and PrepareBond, which
	// create VFs and may change the NIC's mode.
	DefaultSlowCallTimeout = 2 * time.Minute
	// DefaultMaxBackoff bounds the wait before restarting a backend that
	// keeps crashing.
	DefaultMaxBackoff = 5 * time.Second
	// startTimeout bounds a backend's start, up to its first answer.
	startTimeout = 30 * time.Second
	// stableAfter is how long a backend must have run for its crash to
	// count as a first one (restarted at once) rather than one more of a
	// series (restarted after a growing wait).
	stableAfter = 10 * time.Second
)

// Config says how vflagd runs one backend.
type Config struct {
	// Name is the backend's name ("generic", "ice", "mlx5"); the binary
	// must answer Info with it.
	Name string
	// Path is the backend binary (default DefaultPath(Name)).
	Path string
	// SHA256 is the binary's expected SHA-256 in hex. When empty it is
	// read, at each start, from <Path>.sha256 (sha256sum's format). A
	// binary whose sum differs is not run.
	SHA256 string
	// CallTimeout and SlowCallTimeout bound each call (defaults
	// DefaultCallTimeout, DefaultSlowCallTimeout). A backend that does not
	// answer in time is killed and restarted on the next call.
	CallTimeout, SlowCallTimeout time.Duration
	// MaxBackoff bounds the wait before restarting a backend that crashed
	// soon after its last start (default DefaultMaxBackoff). The first
	// crash after a good run is restarted at once.
	MaxBackoff time.Duration
	// OnRestart, when set, is called in a goroutine of its own each time
	// the backend runs again after it had exited (crashed, was killed or
	// timed out), so that the caller can re-read what the lost process
	// may have left half done.
	OnRestart func()
	// Log gets the client's and the backend's logs.
	Log *slog.Logger

	// versions are the protocol versions offered (tests); default
	// ProtocolVersion.
	versions []int
	// env is added to the backend's environment (tests).
	env []string
}

// Client runs a backend binary as a child process and is a Backend that
// calls it. It starts the process in Launch, restarts it on the next call
// after it exited, and bounds each call. It is safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger

	// mu guards everything below.
	mu sync.Mutex
	// cur is the running process (nil when there is none).
	cur *process
	// starts counts successful starts.
	starts int
	// crashes counts consecutive quick crashes and failed starts.
	crashes int
	// retryAt is when the next start may be tried.
	retryAt time.Time
	closed  bool
}

var _ Backend = (*Client)(nil)

// process is one run of the backend binary.
type process struct {
	gp      *goplugin.Client
	cmd     *exec.Cmd
	b       Backend
	pid     int
	started time.Time
}

// Launch starts the backend cfg describes and checks that it answers
// under its name. The errors name the backend and the binary: a missing
// binary or checksum, a checksum mismatch (both sums), another protocol
// version (both versions).
func Launch(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Name == "" {
		return nil, errors.New("backend without a name")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath(cfg.Name)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.SlowCallTimeout <= 0 {
		cfg.SlowCallTimeout = DefaultSlowCallTimeout
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if len(cfg.versions) == 0 {
		cfg.versions = []int{ProtocolVersion}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log.With("backend", cfg.Name)}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.start(ctx)
	if err != nil {
		return nil, err
	}
	c.cur, c.starts = p, 1
	return c, nil
}

// Name is the backend's name.
func (c *Client) Name() string { return c.cfg.Name }

// PID is the process id of the running backend (0 when none runs).
func (c *Client) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil || c.cur.gp.Exited() {
		return 0
	}
	return c.cur.pid
}

// Close stops the backend process; later calls fail with ErrClosed.
func (c *Client) Close() {
	c.mu.Lock()
	p := c.cur
	c.cur, c.closed = nil, true
	c.mu.Unlock()
	if p != nil {
		p.gp.Kill()
	}
}

// start runs the binary, negotiates the protocol and asks Info. c.mu is
// held.
func (c *Client) start(ctx context.Context) (*process, error) {
	name, path := c.cfg.Name, c.cfg.Path
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("backend %s: %w (install vflag's backends, or set backends.%s.path)", name, err, name)
	}
	want, from, err := c.checksum()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path)
	cmd.Env = append(cmd.Env, c.cfg.env...)
	gp := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: pluginSets(nil, c.cfg.versions...),
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: want, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     startTimeout,
		Logger:           newHCLogger(c.log, hclog.Info),
		SyncStdout:       lineWriter(func(s string) { c.log.Info("backend stdout", "text", s) }),
		SyncStderr:       lineWriter(func(s string) { c.log.Info("backend stderr", "text", s) }),
	})
	rpc, err := gp.Client()
	if err != nil {
		gp.Kill()
		return nil, c.startError(err, want, from)
	}
	raw, err := rpc.Dispense(pluginName)
	if err != nil {
		gp.Kill()
		return nil, fmt.Errorf("backend %s (%s): %w", name, path, err)
	}
	b, ok := raw.(Backend)
	if !ok {
		gp.Kill()
		return nil, fmt.Errorf("backend %s (%s): the plugin is a %T, not a Backend", name, path, raw)
	}
	p := &process{gp: gp, cmd: cmd, b: b, started: time.Now()}
	if cmd.Process != nil {
		p.pid = cmd.Process.Pid
	}
	ictx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	info, err := p.b.Info(ictx)
	cancel()
	if err != nil {
		gp.Kill()
		return nil, fmt.Errorf("backend %s (%s, pid %d): Info: %w", name, path, p.pid, err)
	}
	if info.Name != name {
		gp.Kill()
		return nil, fmt.Errorf("backend %s: %s answers as backend %q", name, path, info.Name)
	}
	c.log.Info("backend started", "path", path, "version", info.Version, "pid", p.pid, "protocol", gp.NegotiatedVersion())
	return p, nil
}

// checksum returns the binary's expected SHA-256 and where it comes from.
func (c *Client) checksum() (sum []byte, from string, err error) {
	name, text, from := c.cfg.Name, c.cfg.SHA256, "the configuration"
	if text == "" {
		from = c.cfg.Path + ".sha256"
		data, err := os.ReadFile(from)
		if err != nil {
			return nil, "", fmt.Errorf("backend %s: no checksum for %s: %w (install %s beside it, or set backends.%s.sha256): %w",
				name, c.cfg.Path, err, from, name, ErrChecksum)
		}
		if f := strings.Fields(string(data)); len(f) > 0 {
			text = f[0]
		}
	}
	sum, err = hex.DecodeString(text)
	if err != nil || len(sum) != sha256.Size {
		return nil, "", fmt.Errorf("backend %s: %q from %s is not a SHA-256 (64 hex digits): %w", name, text, from, ErrChecksum)
	}
	return sum, from, nil
}

// versionLine is how go-plugin names the backend's version when it has
// none of ours.
var versionLine = regexp.MustCompile(`[Pp]lugin version: (\d+)`)

// startError names what went wrong in starting the backend.
func (c *Client) startError(err error, want []byte, from string) error {
	name, path := c.cfg.Name, c.cfg.Path
	switch {
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		got := "unreadable"
		if f, oerr := os.Open(path); oerr == nil {
			h := sha256.New()
			if _, cerr := io.Copy(h, f); cerr == nil {
				got = hex.EncodeToString(h.Sum(nil))
			}
			f.Close()
		}
		return fmt.Errorf("backend %s: %s has sha256 %s, but %s says %s; not running it: %w",
			name, path, got, from, hex.EncodeToString(want), ErrChecksum)
	case strings.Contains(err.Error(), "incompatible API version"):
		theirs := "another"
		if m := versionLine.FindStringSubmatch(err.Error()); m != nil {
			theirs = m[1]
		}
		return fmt.Errorf("backend %s: %s speaks backend protocol version %s, this vflagd speaks %s: %w",
			name, path, theirs, joinInts(c.cfg.versions), ErrProtocol)
	}
	return fmt.Errorf("backend %s (%s): start: %w", name, path, err)
}

func joinInts(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, " and ")
}

// process returns the running backend, restarting it when it exited.
func (c *Client) process(ctx context.Context) (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("backend %s: %w", c.cfg.Name, ErrClosed)
	}
	if p := c.cur; p != nil {
		if !p.gp.Exited() {
			return p, nil
		}
		c.lostLocked(p, "exited")
	}
	if d := time.Until(c.retryAt); d > 0 {
		c.log.Info("backend keeps failing; waiting before restarting it", "wait", d.Round(time.Millisecond), "failures", c.crashes)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("backend %s: waiting to restart it: %w", c.cfg.Name, ctx.Err())
		}
	}
	p, err := c.start(ctx)
	if err != nil {
		c.crashes++
		c.retryAt = time.Now().Add(c.backoff())
		return nil, err
	}
	c.cur = p
	c.starts++
	c.log.Warn("backend restarted", "pid", p.pid, "starts", c.starts)
	if c.cfg.OnRestart != nil {
		go c.cfg.OnRestart()
	}
	return p, nil
}

// backoff is the wait before the next start after c.crashes failures in
// a row: none after the first, then 100 ms doubling up to MaxBackoff.
func (c *Client) backoff() time.Duration {
	if c.crashes <= 1 {
		return 0
	}
	d := 100 * time.Millisecond << min(c.crashes-2, 16)
	return min(d, c.cfg.MaxBackoff)
}

// lost forgets p (if it is still the current process), killing it.
func (c *Client) lost(p *process, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lostLocked(p, why)
}

// lostLocked is lost with c.mu held.
func (c *Client) lostLocked(p *process, why string) {
	if c.cur != p {
		return
	}
	c.cur = nil
	if time.Since(p.started) >= stableAfter {
		c.crashes = 1
	} else {
		c.crashes++
	}
	c.retryAt = time.Now().Add(c.backoff())
	c.log.Error("backend lost; it restarts on the next call", "pid", p.pid, "reason", why, "ran", time.Since(p.started).Round(time.Millisecond))
	if p.gp.Exited() {
		go p.gp.Kill() // reaps and cleans up
		return
	}
	// A backend that hangs would not shut down gracefully either.
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	go p.gp.Kill()
}

// call runs one method of the backend with its timeout, restarting the
// backend first if it had exited. A call whose process goes away under it
// (killed between calls, or crashed by this very call) is tried once more
// on a new process: every method is a read or idempotent (Backend).
func call[T any](ctx context.Context, c *Client, method string, slow bool, f func(context.Context, Backend) (T, error)) (T, error) {
	var zero T
	timeout := c.cfg.CallTimeout
	if slow {
		timeout = c.cfg.SlowCallTimeout
	}
	var lostErr error
	for range 2 {
		p, err := c.process(ctx)
		if err != nil {
			if lostErr != nil {
				err = fmt.Errorf("%w (after %w)", err, lostErr)
			}
			return zero, fmt.Errorf("%s: %w", method, err)
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		v, err := f(cctx, p.b)
		// A backend that answers, even with its own deadline error, is
		// alive. Without its answer, the deadline passing on our side or
		// on its side (gRPC then resets the stream) means it hung.
		var re *RemoteError
		answered := errors.As(err, &re) && re.FromBackend
		code := status.Code(err)
		timedOut := err != nil && !answered && ctx.Err() == nil &&
			(errors.Is(cctx.Err(), context.DeadlineExceeded) || code == codes.DeadlineExceeded || code == codes.Canceled)
		cancel()
		switch {
		case err == nil:
			return v, nil
		case timedOut:
			c.lost(p, method+" timed out")
			return zero, fmt.Errorf("backend %s: %s did not answer within %s (pid %d killed; restarted on the next call): %w: %w",
				c.cfg.Name, method, timeout, p.pid, ErrTimeout, context.DeadlineExceeded)
		case !answered && ctx.Err() == nil && (code == codes.Unavailable || p.gp.Exited()):
			c.lost(p, method+" failed: "+err.Error())
			lostErr = fmt.Errorf("backend %s: %s: the backend process (pid %d) went away: %w: %w", c.cfg.Name, method, p.pid, ErrExited, err)
			continue
		}
		return zero, fmt.Errorf("backend %s: %s: %w", c.cfg.Name, method, err)
	}
	return zero, lostErr
}

// none adapts a method that returns only an error to call.
func none(f func(context.Context, Backend) error) func(context.Context, Backend) (struct{}, error) {
	return func(ctx context.Context, b Backend) (struct{}, error) { return struct{}{}, f(ctx, b) }
}

// Info implements Backend.
func (c *Client) Info(ctx context.Context) (Info, error) {
	return call(ctx, c, "Info", false, func(ctx context.Context, b Backend) (Info, error) { return b.Info(ctx) })
}

// Probe implements Backend.
func (c *Client) Probe(ctx context.Context, spec BondSpec) (Capabilities, error) {
	return call(ctx, c, "Probe", false, func(ctx context.Context, b Backend) (Capabilities, error) { return b.Probe(ctx, spec) })
}

// Preflight implements Backend.
func (c *Client) Preflight(ctx context.Context, spec BondSpec) ([]Finding, error) {
	return call(ctx, c, "Preflight", false, func(ctx context.Context, b Backend) ([]Finding, error) { return b.Preflight(ctx, spec) })
}

// PrepareBond implements Backend.
func (c *Client) PrepareBond(ctx context.Context, spec BondSpec) ([]Finding, error) {
	return call(ctx, c, "PrepareBond", true, func(ctx context.Context, b Backend) ([]Finding, error) { return b.PrepareBond(ctx, spec) })
}

// PF implements Backend.
func (c *Client) PF(ctx context.Context, name string) (vfmgr.PF, error) {
	return call(ctx, c, "PF", false, func(ctx context.Context, b Backend) (vfmgr.PF, error) { return b.PF(ctx, name) })
}

// VFs implements Backend.
func (c *Client) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	return call(ctx, c, "VFs", false, func(ctx context.Context, b Backend) ([]vfmgr.VF, error) { return b.VFs(ctx, pf) })
}

// SetNumVFs implements Backend.
func (c *Client) SetNumVFs(ctx context.Context, pf string, n int) error {
	_, err := call(ctx, c, "SetNumVFs", true, none(func(ctx context.Context, b Backend) error { return b.SetNumVFs(ctx, pf, n) }))
	return err
}

// ConfigureVF implements Backend.
func (c *Client) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	_, err := call(ctx, c, "ConfigureVF", false, none(func(ctx context.Context, b Backend) error { return b.ConfigureVF(ctx, pf, idx, cfg) }))
	return err
}

// ReleaseVF implements Backend.
func (c *Client) ReleaseVF(ctx context.Context, pf string, idx int) error {
	_, err := call(ctx, c, "ReleaseVF", false, none(func(ctx context.Context, b Backend) error { return b.ReleaseVF(ctx, pf, idx) }))
	return err
}

// PlanFailover implements Backend. A plan that does not answer req
// (CheckPlan) is an error wrapping ErrPlanOutOfBounds: a backend does not
// get to touch a VF it was not asked about.
func (c *Client) PlanFailover(ctx context.Context, req FailoverRequest) (FailoverPlan, error) {
	plan, err := call(ctx, c, "PlanFailover", false, func(ctx context.Context, b Backend) (FailoverPlan, error) { return b.PlanFailover(ctx, req) })
	if err != nil {
		return FailoverPlan{}, err
	}
	if err := CheckPlan(req, plan); err != nil {
		return FailoverPlan{}, fmt.Errorf("backend %s: PlanFailover: %w", c.cfg.Name, err)
	}
	return plan, nil
}

// VerifyFailover implements Backend.
func (c *Client) VerifyFailover(ctx context.Context, plan FailoverPlan) ([]Finding, error) {
	return call(ctx, c, "VerifyFailover", false, func(ctx context.Context, b Backend) ([]Finding, error) { return b.VerifyFailover(ctx, plan) })
}
