package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// stateFile is what a testbed records in its run directory, so that later
// commands (`vflag-testbed pull`, `down`) and later runs (Sweep) find it.
type stateFile struct {
	Name    string      `json:"name"`
	Owner   int         `json:"owner_pid"` // 0 when detached
	Started bool        `json:"started"`
	Accel   string      `json:"accel"`
	Created time.Time   `json:"created"`
	Hosts   []hostState `json:"hosts"`

	dir string // where it was loaded from
}

type hostState struct {
	Name       string             `json:"name"`
	Index      int                `json:"index"`
	VFs        int                `json:"vfs"`
	MemoryMB   int                `json:"memory_mb"`
	Flavour    Flavour            `json:"flavour,omitempty"`
	PID        int                `json:"pid"`
	ReadyAfter time.Duration      `json:"ready_after_ns"`
	LinkDown   [PortsPerHost]bool `json:"link_down"`
}

const stateName = "state.json"

// saveState writes the state file atomically; tb.mu is held.
func (tb *Testbed) saveState() error {
	st := stateFile{Name: tb.cfg.Name, Started: tb.started, Accel: tb.cfg.Accel, Created: time.Now()}
	if !tb.cfg.Detached {
		st.Owner = os.Getpid()
	}
	for _, h := range tb.hosts {
		st.Hosts = append(st.Hosts, hostState{
			Name: h.spec.Name, Index: h.index, VFs: h.spec.VFs, MemoryMB: h.spec.MemoryMB, Flavour: h.spec.Flavour,
			PID: h.PID, ReadyAfter: h.ReadyAfter, LinkDown: h.LinkDown,
		})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode testbed state: %w", err)
	}
	tmp := filepath.Join(tb.dir, "."+stateName)
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write testbed state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(tb.dir, stateName)); err != nil {
		return fmt.Errorf("write testbed state: %w", err)
	}
	return nil
}

func loadState(dir string) (stateFile, error) {
	var st stateFile
	b, err := os.ReadFile(filepath.Join(dir, stateName))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode %s: %w", filepath.Join(dir, stateName), err)
	}
	st.dir = dir
	return st, nil
}

// alive tells whether anything of the testbed still runs: its owner
// process, or any of its QEMUs.
func (st stateFile) alive() bool {
	if st.Owner != 0 && st.Owner != os.Getpid() && syscall.Kill(st.Owner, 0) == nil {
		return true
	}
	for _, h := range st.Hosts {
		if h.PID != 0 && isOurQEMU(h.PID, filepath.Join(st.dir, h.Name)) {
			return true
		}
	}
	return false
}

// Attach returns the running testbed named cfg.Name, from its state file,
// for commands that act on a testbed another process started.
func Attach(cfg Config) (*Testbed, error) {
	tb, err := New(cfg)
	if err != nil {
		return nil, err
	}
	st, err := loadState(tb.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("testbed %s: %w (start it with `vflag-testbed up`)", tb.cfg.Name, ErrNotUp)
	}
	if err != nil {
		return nil, err
	}
	tb.cfg.Accel = st.Accel
	tb.cfg.Detached = st.Owner == 0
	for _, hs := range st.Hosts {
		if hs.Flavour == "" { // a state file from before flavours
			hs.Flavour = FlavourInitramfs
		}
		tb.hosts = append(tb.hosts, &host{
			spec:  HostSpec{Name: hs.Name, VFs: hs.VFs, MemoryMB: hs.MemoryMB, Flavour: hs.Flavour},
			index: hs.Index, dir: filepath.Join(tb.dir, hs.Name),
			PID: hs.PID, ReadyAfter: hs.ReadyAfter, LinkDown: hs.LinkDown,
		})
	}
	tb.started = st.alive()
	if !tb.started {
		return tb, fmt.Errorf("testbed %s: %w (its processes are gone; `vflag-testbed down` cleans up)", tb.cfg.Name, ErrNotUp)
	}
	return tb, nil
}

// Sweep removes what earlier runs left behind under runDir and in the
// network namespace list: testbeds whose owner and QEMUs are all gone, and
// vflag-*-fabric / vflag-*-client namespaces no live testbed claims.
func Sweep(runDir string, log *slog.Logger) error {
	var errs []error
	live := map[string]bool{}
	entries, _ := os.ReadDir(runDir)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(runDir, e.Name())
		st, err := loadState(dir)
		if err == nil && st.alive() {
			live[e.Name()] = true
			continue
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("unreadable testbed state; removing", "dir", dir, "err", err)
		}
		log.Info("removing leftovers of an earlier testbed run", "testbed", e.Name())
		tb := &Testbed{cfg: Config{Name: e.Name()}, fabric: fabric{tb: e.Name()}, dir: dir, log: log}
		for _, hs := range st.Hosts {
			tb.hosts = append(tb.hosts, &host{spec: HostSpec{Name: hs.Name}, dir: filepath.Join(dir, hs.Name), PID: hs.PID})
		}
		if err := tb.teardown(); err != nil {
			errs = append(errs, err)
		}
	}
	nss, _ := os.ReadDir(netnsDir)
	for _, e := range nss {
		name := e.Name()
		tbName, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		if t, ok := strings.CutSuffix(tbName, "-fabric"); ok {
			tbName = t
		} else if t, ok := strings.CutSuffix(tbName, "-client"); ok {
			tbName = t
		} else {
			continue
		}
		if live[tbName] || qemuOfTestbed(tbName) {
			continue
		}
		log.Info("removing orphaned testbed namespace", "netns", name)
		if err := deleteNamedNetns(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// qemuOfTestbed tells whether a QEMU of the testbed named tb runs, whatever
// its run directory: a Sweep of one run directory (tests use temporary
// ones) must not take the namespaces of a testbed another one holds. A
// host's QEMU has RunDir/<tb>/<host>/qmp.sock on its command line.
func qemuOfTestbed(tb string) bool {
	qmp := regexp.MustCompile(`/` + regexp.QuoteMeta(tb) + `/[a-z][a-z0-9]*/qmp\.sock`)
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if strings.HasSuffix(args[0], "qemu-system-x86_64") && qmp.Match(b) {
			return true
		}
	}
	return false
}
