package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/testenv/guestagent"
	"github.com/vflag/vflag/testenv/image"
)

// Errors callers can branch on.
var (
	// ErrAlreadyUp is returned by Start when a live testbed has the name.
	ErrAlreadyUp = errors.New("testbed is already up")
	// ErrNotUp is returned when a command names a testbed that is not running.
	ErrNotUp = errors.New("testbed is not up")
	// ErrUnknownHost is returned for a host name the testbed does not have.
	ErrUnknownHost = errors.New("unknown host")
	// ErrUnknownPort is returned for a port name the testbed does not have.
	ErrUnknownPort = errors.New("unknown port")
	// ErrMissingTool is returned when QEMU, the kernel or the agent is missing.
	ErrMissingTool = errors.New("missing prerequisite")
)

// PortsPerHost is the number of igb NIC ports of every KVM-host VM.
const PortsPerHost = 2

// MaxVFs is sriov_totalvfs of QEMU's igb (Intel 82576).
const MaxVFs = 7

// MaxMemoryMB is the most memory a KVM-host VM may have. Above it, on
// QEMU 10's q35 with igb, the VFs stop working (see AddHost).
const MaxMemoryMB = 2048

var (
	tbNameRE   = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)
	hostNameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)
)

// Config configures a testbed.
type Config struct {
	// Name tells testbeds apart; [a-z][a-z0-9]{0,11}, default "tb".
	Name string
	// CacheDir holds downloaded and built images (default $VFLAG_CACHE or
	// /var/cache/vflag).
	CacheDir string
	// RunDir holds each testbed's sockets, logs and state (default
	// /run/vflag-testbed).
	RunDir string
	// Accel is the QEMU accelerator: "tcg" (default, and $VFLAG_ACCEL) or
	// "kvm" where KVM really works.
	Accel string
	// Detached lets the QEMU processes outlive this process (the CLI's `up`);
	// otherwise they are killed when it dies.
	Detached bool
	// BinDir holds the statically linked project binaries the guest gets
	// in /usr/bin: vflag-guest (required), vflagd and vflag (when present).
	// Default $VFLAG_BIN_DIR, then the directory of this executable.
	BinDir string
	// Files are extra host files for the guest image (project binaries).
	Files []image.File
	// KeepOnFailure leaves a testbed whose Start failed running, for a
	// look inside (`vflag-testbed up --keep`); `down` removes it.
	KeepOnFailure bool
	// Log receives progress; default discards.
	Log *slog.Logger
}

// HostSpec describes one KVM-host VM.
type HostSpec struct {
	// Name is the host's name, [a-z][a-z0-9]{0,9}.
	Name string
	// VFs is the number of VFs created on each port (0..7, default 7).
	VFs int
	// MemoryMB is the guest memory (default 1024; 2048 for FlavourLibvirt;
	// at most MaxMemoryMB).
	MemoryMB int
	// Flavour is what the host boots (default FlavourInitramfs).
	Flavour Flavour
}

// Testbed is a set of KVM-host VMs on two top-of-rack switches, with a
// client. Build it with New, AddHost and Start; Close tears it down.
type Testbed struct {
	cfg    Config
	fabric fabric
	dir    string
	log    *slog.Logger

	// mu guards hosts, started and the agent clients inside hosts.
	mu      sync.Mutex
	hosts   []*host
	started bool
}

// New returns an unstarted testbed.
func New(cfg Config) (*Testbed, error) {
	if cfg.Name == "" {
		cfg.Name = "tb"
	}
	if !tbNameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("testbed name %q: want a lower-case letter then up to 11 letters or digits", cfg.Name)
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = envOr("VFLAG_CACHE", "/var/cache/vflag")
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/run/vflag-testbed"
	}
	if cfg.Accel == "" {
		cfg.Accel = envOr("VFLAG_ACCEL", "tcg")
	}
	if cfg.Accel != "tcg" && cfg.Accel != "kvm" {
		return nil, fmt.Errorf("accelerator %q: want tcg or kvm", cfg.Accel)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Testbed{
		cfg:    cfg,
		fabric: fabric{tb: cfg.Name},
		dir:    filepath.Join(cfg.RunDir, cfg.Name),
		log:    cfg.Log.With("testbed", cfg.Name),
	}, nil
}

// Name returns the testbed's name.
func (tb *Testbed) Name() string { return tb.cfg.Name }

// AddHost adds a KVM-host VM; call before Start.
func (tb *Testbed) AddHost(spec HostSpec) error {
	if !hostNameRE.MatchString(spec.Name) {
		return fmt.Errorf("host name %q: want a lower-case letter then up to 9 letters or digits", spec.Name)
	}
	if spec.VFs == 0 {
		spec.VFs = MaxVFs
	}
	if spec.VFs < 0 || spec.VFs > MaxVFs {
		return fmt.Errorf("host %s: %d VFs per port: igb has 0..%d", spec.Name, spec.VFs, MaxVFs)
	}
	switch spec.Flavour {
	case "":
		spec.Flavour = FlavourInitramfs
	case FlavourInitramfs, FlavourLibvirt:
	default:
		return fmt.Errorf("host %s: flavour %q: want %s or %s", spec.Name, spec.Flavour, FlavourInitramfs, FlavourLibvirt)
	}
	if spec.MemoryMB == 0 {
		spec.MemoryMB = 1024
		if spec.Flavour == FlavourLibvirt {
			spec.MemoryMB = 2048
		}
	}
	if spec.MemoryMB > MaxMemoryMB {
		return fmt.Errorf("host %s: %d MiB of memory: at most %d, or its VFs do not work: with 3072 MiB the "+
			"kernel put the VFs' BARs above 4 GiB (0xc020000000) and every igbvf probe failed its mailbox "+
			"handshake with the PF (\"PF still in reset state\"), in the host and in nested guests alike",
			spec.Name, spec.MemoryMB, MaxMemoryMB)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.started {
		return fmt.Errorf("add host %s: testbed %s is already started", spec.Name, tb.cfg.Name)
	}
	for _, h := range tb.hosts {
		if h.spec.Name == spec.Name {
			return fmt.Errorf("add host %s: testbed %s already has it", spec.Name, tb.cfg.Name)
		}
	}
	if len(tb.hosts) >= 200 {
		return fmt.Errorf("add host %s: testbed %s is full", spec.Name, tb.cfg.Name)
	}
	tb.hosts = append(tb.hosts, &host{spec: spec, index: len(tb.hosts) + 1, dir: filepath.Join(tb.dir, spec.Name)})
	return nil
}

// Start sweeps leftovers of earlier runs, builds the image, creates the
// fabric, boots every host and provisions it (PFs named pf0/pf1, VFs
// created, bond0 active-backup over the PFs). On error everything it
// created is removed again.
func (tb *Testbed) Start(ctx context.Context) (err error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.started {
		return fmt.Errorf("testbed %s: %w", tb.cfg.Name, ErrAlreadyUp)
	}
	if len(tb.hosts) == 0 {
		return fmt.Errorf("testbed %s has no hosts: AddHost first", tb.cfg.Name)
	}
	if err := checkTools(); err != nil {
		return err
	}
	for _, h := range tb.hosts {
		if h.spec.Flavour == FlavourLibvirt {
			if err := checkLibvirtTools(); err != nil {
				return err
			}
		}
	}
	agent, extra, err := tb.binaries()
	if err != nil {
		return err
	}
	if err := Sweep(tb.cfg.RunDir, tb.log); err != nil {
		return err
	}
	if st, err := loadState(tb.dir); err == nil && st.alive() {
		return fmt.Errorf("testbed %s (%s): %w; run `vflag-testbed down --name %s` first", tb.cfg.Name, tb.dir, ErrAlreadyUp, tb.cfg.Name)
	}

	imgs, err := tb.buildImages(ctx, agent, append(extra, tb.cfg.Files...))
	if err != nil {
		return err
	}

	// From here on, a failure tears down what exists. The state file comes
	// first so that a concurrent Sweep knows these namespaces are owned.
	defer func() {
		if err != nil && !tb.cfg.KeepOnFailure {
			if derr := tb.teardown(); derr != nil {
				err = fmt.Errorf("%w (and tearing down: %w)", err, derr)
			}
		}
	}()
	if err := os.MkdirAll(tb.dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tb.dir, err)
	}
	if err := tb.saveState(); err != nil {
		return err
	}
	tb.log.Info("creating fabric", "fabric", tb.fabric.fabricNS(), "client", tb.fabric.clientNS())
	if err := tb.fabric.create(); err != nil {
		return err
	}
	for _, h := range tb.hosts {
		if err := h.launch(ctx, tb, imgs[h.spec.Flavour]); err != nil {
			return err
		}
	}
	if err := tb.saveState(); err != nil {
		return err
	}
	for _, h := range tb.hosts {
		tb.log.Info("waiting for guest agent", "host", h.spec.Name)
		if err := h.waitReady(ctx); err != nil {
			return err
		}
		if err := h.provision(ctx); err != nil {
			return err
		}
		if h.spec.Flavour == FlavourLibvirt {
			if err := h.waitLibvirt(ctx); err != nil {
				return err
			}
		}
		h.ReadyAfter = time.Since(h.launched)
		tb.log.Info("host ready", "host", h.spec.Name, "after", h.ReadyAfter.Round(time.Millisecond))
	}
	tb.started = true
	return tb.saveState()
}

// Close stops every QEMU, removes the fabric's namespaces (and with them
// every tap and bridge) and the run directory. It is safe to call twice.
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.started = false
	return tb.teardown()
}

// teardown removes everything; tb.mu is held.
func (tb *Testbed) teardown() error {
	var errs []error
	for _, h := range tb.hosts {
		if err := h.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := tb.fabric.destroy(); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(tb.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", tb.dir, err))
	}
	return errors.Join(errs...)
}

// Hosts returns the names of the testbed's hosts.
func (tb *Testbed) Hosts() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	names := make([]string, 0, len(tb.hosts))
	for _, h := range tb.hosts {
		names = append(names, h.spec.Name)
	}
	return names
}

// ClientNetns is the path of the client's network namespace.
func (tb *Testbed) ClientNetns() string { return tb.fabric.clientPath() }

// FabricNetns is the path of the switches' network namespace.
func (tb *Testbed) FabricNetns() string { return tb.fabric.fabricPath() }

// HostAddr is the address of a host's bond0 on the testbed subnet.
func (tb *Testbed) HostAddr(name string) (string, error) {
	h, err := tb.host(name)
	if err != nil {
		return "", err
	}
	return h.addr().String(), nil
}

// ConsoleLog is the path of a host's serial console log.
func (tb *Testbed) ConsoleLog(name string) (string, error) {
	h, err := tb.host(name)
	if err != nil {
		return "", err
	}
	return h.path("console.log"), nil
}

// ReadyAfter is how long the host took from QEMU's start to being
// provisioned (PFs named, VFs created, bond up).
func (tb *Testbed) ReadyAfter(name string) (time.Duration, error) {
	h, err := tb.host(name)
	if err != nil {
		return 0, err
	}
	return h.ReadyAfter, nil
}

// Exec runs a shell command in a host and returns its exit code and output.
// A non-zero exit is not an error; failing to run the command is.
func (tb *Testbed) Exec(ctx context.Context, hostName, cmd string) (guestagent.Result, error) {
	h, err := tb.host(hostName)
	if err != nil {
		return guestagent.Result{}, err
	}
	return h.exec(ctx, cmd, 0)
}

// MustExec runs a command and turns a non-zero exit into an error that
// carries the command's output.
func (tb *Testbed) MustExec(ctx context.Context, hostName, cmd string) (string, error) {
	res, err := tb.Exec(ctx, hostName, cmd)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return string(res.Stdout), fmt.Errorf("%s: `%s` exited %d: %s", hostName, cmd, res.ExitCode,
			strings.TrimSpace(string(res.Stderr)+" "+string(res.Stdout)))
	}
	return string(res.Stdout), nil
}

// PullMode says who notices a pulled cable.
type PullMode int

const (
	// Cable is a real cable pull: the NIC loses link and the switch port
	// goes down, which flushes what the switch learned on it.
	Cable PullMode = iota
	// Silent drops the link on the NIC only; the switch port stays up and
	// keeps forwarding into the dead port until its FDB entries age out.
	Silent
)

// Pull takes the cable of a port out ("kvm1-p0"). It returns when the
// change is made, with the time the pull began.
func (tb *Testbed) Pull(ctx context.Context, port string, mode PullMode) (time.Time, error) {
	return tb.setCable(ctx, port, false, mode)
}

// Plug puts a port's cable back on both sides.
func (tb *Testbed) Plug(ctx context.Context, port string) (time.Time, error) {
	return tb.setCable(ctx, port, true, Cable)
}

func (tb *Testbed) setCable(ctx context.Context, port string, up bool, mode PullMode) (time.Time, error) {
	h, idx, err := tb.port(port)
	if err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	if mode == Cable {
		if err := tb.fabric.setPort(port, up); err != nil {
			return time.Time{}, err
		}
	}
	if err := h.qmp(ctx, func(m qmpMonitor) error { return m.SetLink(portDevice(idx), up) }); err != nil {
		return time.Time{}, fmt.Errorf("set link of %s up=%v: %w", port, up, err)
	}
	tb.mu.Lock()
	h.LinkDown[idx] = !up
	tb.mu.Unlock()
	return at, tb.saveState()
}

// Pause stops a host's virtual CPUs (QMP stop); its NICs stay cabled but
// nothing answers.
func (tb *Testbed) Pause(ctx context.Context, hostName string) error {
	h, err := tb.host(hostName)
	if err != nil {
		return err
	}
	return h.qmp(ctx, func(m qmpMonitor) error { return m.Stop() })
}

// Resume continues a paused host (QMP cont).
func (tb *Testbed) Resume(ctx context.Context, hostName string) error {
	h, err := tb.host(hostName)
	if err != nil {
		return err
	}
	return h.qmp(ctx, func(m qmpMonitor) error { return m.Cont() })
}

// Ports lists the testbed's port names.
func (tb *Testbed) Ports() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var ports []string
	for _, h := range tb.hosts {
		for i := range PortsPerHost {
			ports = append(ports, h.portName(i))
		}
	}
	return ports
}

func (tb *Testbed) host(name string) (*host, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, h := range tb.hosts {
		if h.spec.Name == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("host %q of testbed %s: %w (have %s)", name, tb.cfg.Name, ErrUnknownHost, strings.Join(tb.hostNamesLocked(), ", "))
}

func (tb *Testbed) hostNamesLocked() []string {
	var names []string
	for _, h := range tb.hosts {
		names = append(names, h.spec.Name)
	}
	return names
}

// port resolves "kvm1-p0" to its host and port index.
func (tb *Testbed) port(name string) (*host, int, error) {
	hostName, idx, ok := strings.Cut(name, "-p")
	n, err := strconv.Atoi(idx)
	if ok && err == nil && n >= 0 && n < PortsPerHost {
		if h, err := tb.host(hostName); err == nil {
			return h, n, nil
		}
	}
	return nil, 0, fmt.Errorf("port %q of testbed %s: %w (have %s)", name, tb.cfg.Name, ErrUnknownPort, strings.Join(tb.Ports(), ", "))
}

// GuestBinaries are the project binaries the guest gets in /usr/bin
// besides the agent, when BinDir has them (and the generic NIC backend in
// plugin.Dir). vflag-hook goes to libvirt-flavour hosts only (libvirtOnly).
var guestBinaries = []string{"vflagd", "vflag", "vflag-hook"}

// binaries finds the agent and the other project binaries for the guest.
func (tb *Testbed) binaries() (agent string, files []image.File, err error) {
	dir := tb.cfg.BinDir
	if dir == "" {
		dir = os.Getenv("VFLAG_BIN_DIR")
	}
	if dir == "" {
		if exe, err := os.Executable(); err == nil {
			dir = filepath.Dir(exe)
		}
	}
	agent = filepath.Join(dir, "vflag-guest")
	if _, err := os.Stat(agent); err != nil {
		return "", nil, fmt.Errorf("%w: %s (build the guest binaries with `make build`, or set VFLAG_BIN_DIR)", ErrMissingTool, agent)
	}
	for _, b := range guestBinaries {
		p := filepath.Join(dir, b)
		if _, err := os.Stat(p); err == nil {
			// vflagd links libc (cgo, for libvirt): the initramfs gets it.
			files = append(files, image.File{Guest: "/usr/bin/" + b, Host: p, WithLibs: b == "vflagd"})
		}
	}
	// The NIC backend vflagd runs on igb, where vflag's package installs
	// it, with its SHA-256 beside it (`make build` writes both).
	for _, p := range []string{"vflag-backend-generic", "vflag-backend-generic.sha256"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			files = append(files, image.File{Guest: filepath.Join(plugin.Dir, p), Host: filepath.Join(dir, p)})
		}
	}
	return agent, files, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Status is a snapshot of a testbed for people and scripts.
type Status struct {
	// Name is the testbed's name.
	Name string `json:"name"`
	// Up is true while the testbed is started and its QEMUs run.
	Up bool `json:"up"`
	// Hosts are the KVM-host VMs.
	Hosts []HostStatus `json:"hosts"`
}

// HostStatus is one host in a Status.
type HostStatus struct {
	// Name is the host's name.
	Name string `json:"name"`
	// Flavour is what the host boots.
	Flavour Flavour `json:"flavour"`
	// PID is its QEMU's process id.
	PID int `json:"pid"`
	// Running is true while that QEMU runs.
	Running bool `json:"running"`
	// Addr is the address of the host's bond0.
	Addr string `json:"addr"`
	// ReadyMs is how long the host took to boot and be provisioned.
	ReadyMs int64 `json:"ready_ms"`
	// Ports are the host's NIC ports.
	Ports []PortStatus `json:"ports"`
}

// PortStatus is one NIC port in a Status.
type PortStatus struct {
	// Name is the port's name, also its tap's on the switch ("kvm1-p0").
	Name string `json:"name"`
	// Switch is the bridge the port is cabled to.
	Switch string `json:"switch"`
	// Cabled is false while the cable is pulled.
	Cabled bool `json:"cabled"`
}

// Status reports the testbed's hosts and cables.
func (tb *Testbed) Status() Status {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	st := Status{Name: tb.cfg.Name}
	anyRunning := false
	for _, h := range tb.hosts {
		hs := HostStatus{Name: h.spec.Name, Flavour: h.spec.Flavour, PID: h.PID, Running: isOurQEMU(h.PID, h.dir), Addr: h.addr().String(), ReadyMs: h.ReadyAfter.Milliseconds()}
		anyRunning = anyRunning || hs.Running
		for i := range PortsPerHost {
			hs.Ports = append(hs.Ports, PortStatus{Name: h.portName(i), Switch: []string{ToRA, ToRB}[i], Cabled: !h.LinkDown[i]})
		}
		st.Hosts = append(st.Hosts, hs)
	}
	st.Up = tb.started && anyRunning
	return st
}

// ConsoleSocket is the unix socket of a host's serial console.
func (tb *Testbed) ConsoleSocket(name string) (string, error) {
	h, err := tb.host(name)
	if err != nil {
		return "", err
	}
	return h.path("console.sock"), nil
}
