package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"strings"
	"time"

	"github.com/vflag/vflag/api"
)

// MaxXML bounds the domain XML the hook reads (a domain XML is a few KiB).
const MaxXML = 16 << 20

// Main runs the hook as libvirt does (args without the program name,
// the domain XML on stdin) and returns its exit status. Everything it does
// is bounded by the settings' timeout, reading stdin and vflagd's answers
// included: if anything hangs, it gives up on its own. stdout gets a
// rewritten XML or nothing; messages go to stderr, one line, prefixed
// "vflag: " (virsh shows them inside its error).
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	path := os.Getenv(ConfigEnv)
	if path == "" {
		path = DefaultConfigPath
	}
	cfg, cfgErr := LoadConfig(path)
	var sys *syslog.Writer
	if *cfg.Syslog {
		// Best effort: no syslog, no copy.
		sys, _ = syslog.New(syslog.LOG_WARNING|syslog.LOG_DAEMON, "vflag-hook")
	}
	if sys != nil {
		defer func() { _ = sys.Close() }()
	}
	warn := func(msg string) {
		fmt.Fprintln(stderr, "vflag: warning:", msg)
		if sys != nil {
			_ = sys.Warning(msg)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()

	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, cfgErr, args, stdin, stdout, warn) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(cfg.Timeout + rollbackTimeout + 2*time.Second):
		// Something ignored the deadline; libvirt must not wait on us.
		err = fmt.Errorf("the hook did not finish within %s (timeout in %s); giving up", cfg.Timeout, cfg.where())
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "vflag:", strings.ReplaceAll(err.Error(), "\n", "; "))
	if sys != nil {
		_ = sys.Err(err.Error())
	}
	return 1
}

// run reads the XML and runs the hook.
func run(ctx context.Context, cfg Config, cfgErr error, args []string, stdin io.Reader, stdout io.Writer, warn func(string)) error {
	raw, err := readXML(ctx, stdin)
	if err != nil {
		return err
	}
	if cfgErr != nil {
		// Broken settings must not stop VMs that are none of vflag's
		// business; for the others they are the error.
		d, perr := Parse(raw, Options{PCI: Sysfs{Root: cfg.Sysfs}})
		if perr == nil && !d.Wanted() && !mayBeVflags(d) {
			warn(cfgErr.Error())
			return nil
		}
		return cfgErr
	}
	h := &Hook{
		Config: cfg,
		Dial: func() (Client, error) {
			c, err := api.Dial(cfg.Socket)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		PCI:    Sysfs{Root: cfg.Sysfs},
		Stdout: stdout,
		Warn:   warn,
	}
	return h.Run(ctx, args, raw)
}

// mayBeVflags reports whether a domain has hostdev interfaces, which the
// settings (unmanaged_hostdev) may make the hook's business.
func mayBeVflags(d *Domain) bool {
	for _, it := range d.Interfaces {
		if it.Kind == KindVF {
			return true
		}
	}
	return false
}

// readXML reads stdin up to MaxXML, within ctx.
func readXML(ctx context.Context, stdin io.Reader) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(stdin, MaxXML+1))
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		switch {
		case r.err != nil:
			return nil, fmt.Errorf("read the domain XML from stdin: %w", r.err)
		case len(r.b) > MaxXML:
			return nil, fmt.Errorf("the domain XML on stdin is larger than %d MiB", MaxXML>>20)
		}
		return r.b, nil
	case <-ctx.Done():
		return nil, errors.New("stdin did not deliver the domain XML before the timeout (libvirt writes it and closes stdin)")
	}
}
