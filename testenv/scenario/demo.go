package scenario

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/probe"
)

// Demo boots a fresh two-host testbed, runs the cable-pull scenario on
// kvm1 and the RDMA scenario between kvm1 and kvm2, writes the results to
// resultsDir (JSON per variant, cable-pull.svg, rdma-pull.txt) and prints
// them.
func Demo(ctx context.Context, cfg testenv.Config, resultsDir string, out io.Writer) (err error) {
	tb, boot, err := bootTestbed(ctx, cfg, testenv.HostSpec{Name: "kvm1"}, testenv.HostSpec{Name: "kvm2", VFs: 1})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := tb.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	fmt.Fprintf(out, "testbed up: kvm1 and kvm2 booted and provisioned in %.1f s (2 igb ports each, bond0 active-backup)\n", boot.Seconds())

	// kvm2 is the RDMA peer only: paused, it takes no CPU from kvm1's
	// cable-pull timings (TCG on a small machine).
	if err := tb.Pause(ctx, "kvm2"); err != nil {
		return err
	}
	t1 := time.Now()
	tls, err := RunCablePull(ctx, tb, Options{})
	if err != nil {
		return err
	}
	if err := tb.Resume(ctx, "kvm2"); err != nil {
		return err
	}
	fmt.Fprintf(out, "scenario %s ran in %.1f s\n\n", CablePull, time.Since(t1).Seconds())
	if err := probe.WriteText(out, tls); err != nil {
		return err
	}
	paths, err := WriteResults(resultsDir, tls)
	if err != nil {
		return err
	}

	t2 := time.Now()
	rs, err := RunRDMAPull(ctx, tb, RDMAOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nscenario %s ran in %.1f s (ibv_rc_pingpong kvm1 <-> kvm2 while kvm1-p0 is pulled)\n\n", RDMAPull, time.Since(t2).Seconds())
	var text strings.Builder
	if err := WriteRDMAText(&text, rs); err != nil {
		return err
	}
	fmt.Fprint(out, text.String())
	rpaths, err := WriteRDMAResults(resultsDir, rs)
	if err != nil {
		return err
	}
	txt := filepath.Join(resultsDir, RDMAPull+".txt")
	if err := os.WriteFile(txt, []byte(text.String()), 0o644); err != nil {
		return err
	}
	paths = append(append(paths, rpaths...), txt)
	fmt.Fprintln(out)
	for _, p := range paths {
		fmt.Fprintln(out, "wrote", p)
	}
	return nil
}

// WriteResults writes each timeline as <scenario>-<variant>.json and all of
// them as <scenario>.svg under dir, returning the paths.
func WriteResults(dir string, tls []probe.Timeline) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	var paths []string
	write := func(name string, fn func(io.Writer) error) error {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("results: %w", err)
		}
		if err := fn(f); err != nil {
			f.Close()
			return fmt.Errorf("results %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("results %s: %w", p, err)
		}
		paths = append(paths, p)
		return nil
	}
	for _, tl := range tls {
		if err := write(tl.Scenario+"-"+tl.Variant+".json", func(w io.Writer) error { return probe.WriteJSON(w, tl) }); err != nil {
			return nil, err
		}
	}
	if len(tls) > 0 {
		if err := write(tls[0].Scenario+".svg", func(w io.Writer) error { return probe.WriteSVG(w, tls) }); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// bootTestbed creates a testbed of cfg with hosts and starts it; it
// returns how long the start took. The caller closes the testbed.
func bootTestbed(ctx context.Context, cfg testenv.Config, hosts ...testenv.HostSpec) (*testenv.Testbed, time.Duration, error) {
	tb, err := testenv.New(cfg)
	if err != nil {
		return nil, 0, err
	}
	for _, h := range hosts {
		if err := tb.AddHost(h); err != nil {
			return nil, 0, err
		}
	}
	t0 := time.Now()
	if err := tb.Start(ctx); err != nil {
		return nil, 0, err
	}
	return tb, time.Since(t0), nil
}
