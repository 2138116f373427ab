package guestagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrPortNotFound reports that no virtio-serial port has the wanted name (yet:
// the port appears once virtio_console is loaded).
var ErrPortNotFound = errors.New("virtio-serial port not found")

// FindPort returns the device node of the virtio-serial port called name, for
// example /dev/vport1p1, by reading <sysfs>/class/virtio-ports/*/name (the
// name= of QEMU's virtserialport device). It does not need udev: the node
// itself comes from devtmpfs. It wraps ErrPortNotFound when no port matches.
func FindPort(sysfs, name string) (string, error) {
	entry, err := findPortEntry(sysfs, name)
	if err != nil {
		return "", err
	}
	return filepath.Join("/dev", entry), nil
}

// findPortEntry returns the sysfs entry (vportNpM) of the port called name.
func findPortEntry(sysfs, name string) (string, error) {
	dir := filepath.Join(sysfs, "class", "virtio-ports")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("list virtio-serial ports in %s: %w", dir, err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "name"))
		if err != nil {
			continue // an unnamed or vanishing port
		}
		if strings.TrimSpace(string(b)) == name {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("find virtio-serial port %q in %s: %w", name, dir, ErrPortNotFound)
}

// portServer serves the agent on a virtio-serial port for as long as its
// context lasts.
type portServer struct {
	sysfs  string // where sysfs is mounted
	name   string // the port's name
	devDir string // where the port's device node is
	log    *slog.Logger
	// idle is the pause between two Serve calls on an open port while no
	// host is connected (reads then return EOF at once).
	idle time.Duration
	// minBackoff and maxBackoff bound the pause after a failure to find,
	// open or serve the port.
	minBackoff, maxBackoff time.Duration
}

// ServePort serves the agent on the virtio-serial port called name, found
// through sysfs (FindPort), until ctx is done; it then returns ctx.Err().
//
// It waits for the port to appear (its driver may still be loading), keeps it
// open across host disconnections, polling for the next host every 100 ms,
// and finds and reopens it after any error, backing off up to 2 s. A failure
// is logged once until the failure changes.
func ServePort(ctx context.Context, sysfs, name string, log *slog.Logger) error {
	p := &portServer{
		sysfs:      sysfs,
		name:       name,
		devDir:     "/dev",
		log:        log,
		idle:       100 * time.Millisecond,
		minBackoff: 100 * time.Millisecond,
		maxBackoff: 2 * time.Second,
	}
	return p.run(ctx)
}

func (p *portServer) run(ctx context.Context) error {
	backoff := p.minBackoff
	lastErr := ""
	for {
		opened, err := p.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if opened {
			backoff = p.minBackoff
		}
		if msg := err.Error(); msg != lastErr {
			p.log.Warn("guest agent port unavailable, retrying", "port", p.name, "err", err)
			lastErr = msg
		}
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, p.maxBackoff)
	}
}

// session finds, opens and serves the port until an error; opened reports
// whether the port could be opened.
func (p *portServer) session(ctx context.Context) (opened bool, err error) {
	entry, err := findPortEntry(p.sysfs, p.name)
	if err != nil {
		return false, err
	}
	path := filepath.Join(p.devDir, entry)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("open virtio-serial port %s: %w", path, err)
	}
	defer f.Close()
	p.log.Info("serving guest agent", "port", p.name, "dev", path)
	for {
		if err := Serve(ctx, f, p.log); err != nil {
			return true, fmt.Errorf("serve on virtio-serial port %s: %w", path, err)
		}
		// EOF: no host is connected. Closing the port would discard what
		// a host sends meanwhile, so keep it open and look again shortly.
		if !sleep(ctx, p.idle) {
			return true, ctx.Err()
		}
	}
}

// sleep waits for d or the end of ctx; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
