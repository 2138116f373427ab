// Package cli is the vflag-testbed command line: the testenv API for people,
// so a developer can bring the testbed up, pull cables and look inside hosts
// by hand, and `make demo` can run the scenarios.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/scenario"
)

// ExitError carries an exit code out of a command (the exit code of a
// command run with `exec`).
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// New returns the root command. Output goes to stdout, progress and errors
// to stderr.
func New(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var name string
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := func() testenv.Config { return testenv.Config{Name: name, Log: log} }

	root := &cobra.Command{
		Use:           "vflag-testbed",
		Short:         "Nested-QEMU testbed: KVM-host VMs with emulated SR-IOV NICs on two top-of-rack switches",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&name, "name", "tb", "testbed name")

	var hosts []string
	var vfs, mem int
	var accel, flavour string
	var keep bool
	up := &cobra.Command{
		Use:   "up",
		Short: "Boot the testbed and leave it running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := cfg()
			c.Detached, c.Accel, c.KeepOnFailure = true, accel, keep
			tb, err := testenv.New(c)
			if err != nil {
				return err
			}
			for _, h := range hosts {
				if err := tb.AddHost(testenv.HostSpec{Name: h, VFs: vfs, MemoryMB: mem, Flavour: testenv.Flavour(flavour)}); err != nil {
					return err
				}
			}
			if err := tb.Start(cmd.Context()); err != nil {
				return err
			}
			for _, h := range tb.Hosts() {
				d, _ := tb.ReadyAfter(h)
				addr, _ := tb.HostAddr(h)
				fmt.Fprintf(stdout, "%s ready after %.1f s, bond0 %s, ports %s-p0 (tora) %s-p1 (torb)\n", h, d.Seconds(), addr, h, h)
			}
			fmt.Fprintf(stdout, "client %s in netns %s\n", testenv.ClientAddr(), filepath.Base(tb.ClientNetns()))
			return nil
		},
	}
	up.Flags().StringSliceVar(&hosts, "hosts", []string{"kvm1"}, "KVM-host VM names")
	up.Flags().IntVar(&vfs, "vfs", testenv.MaxVFs, "VFs per port (0-7)")
	up.Flags().IntVar(&mem, "memory", 0, "guest memory in MiB (default 1024, 2048 for the libvirt flavour)")
	up.Flags().StringVar(&flavour, "flavour", string(testenv.FlavourInitramfs), "what the hosts boot: initramfs, or libvirt (Debian root disk with libvirtd and QEMU for nested guests)")
	up.Flags().BoolVar(&keep, "keep", false, "leave a host that failed to start running, to look inside")
	up.Flags().StringVar(&accel, "accel", "", "QEMU accelerator: tcg or kvm (default $VFLAG_ACCEL or tcg)")

	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the testbed and remove its namespaces, taps and QEMU processes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tb, err := testenv.Attach(cfg())
			if tb == nil {
				if errors.Is(err, testenv.ErrNotUp) {
					// Nothing recorded: still sweep orphans.
					return testenv.Sweep("/run/vflag-testbed", log)
				}
				return err
			}
			return tb.Close()
		},
	}

	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the testbed's hosts, processes and cables",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tb, err := testenv.Attach(cfg())
			if tb == nil {
				return err
			}
			st := tb.Status()
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(stdout, "testbed %s: %s\n", st.Name, map[bool]string{true: "up", false: "down"}[st.Up])
			for _, h := range st.Hosts {
				fmt.Fprintf(stdout, "  %-10s pid %-7d %-8s bond0 %s\n", h.Name, h.PID, map[bool]string{true: "running", false: "gone"}[h.Running], h.Addr)
				for _, p := range h.Ports {
					fmt.Fprintf(stdout, "    %-12s %s  cable %s\n", p.Name, p.Switch, map[bool]string{true: "in", false: "PULLED"}[p.Cabled])
				}
			}
			return err
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var silent bool
	pull := &cobra.Command{
		Use:   "pull PORT",
		Short: "Pull a port's cable (PORT is HOST-p0 or HOST-p1)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, err := testenv.Attach(cfg())
			if err != nil {
				return err
			}
			mode := testenv.Cable
			if silent {
				mode = testenv.Silent
			}
			_, err = tb.Pull(cmd.Context(), args[0], mode)
			return err
		},
	}
	pull.Flags().BoolVar(&silent, "silent", false, "drop the link on the NIC only; the switch port stays up")

	plug := &cobra.Command{
		Use:   "plug PORT",
		Short: "Plug a port's cable back in",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, err := testenv.Attach(cfg())
			if err != nil {
				return err
			}
			_, err = tb.Plug(cmd.Context(), args[0])
			return err
		},
	}

	var timeout time.Duration
	execCmd := &cobra.Command{
		Use:   "exec HOST CMD...",
		Short: "Run a shell command in a host; exits with its exit code",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, err := testenv.Attach(cfg())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := tb.Exec(ctx, args[0], strings.Join(args[1:], " "))
			if err != nil {
				return err
			}
			_, _ = stdout.Write(res.Stdout)
			_, _ = stderr.Write(res.Stderr)
			if res.ExitCode != 0 {
				return ExitError{Code: res.ExitCode}
			}
			return nil
		},
	}
	execCmd.Flags().SetInterspersed(false)
	execCmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")

	console := &cobra.Command{
		Use:   "console HOST",
		Short: "Attach to a host's serial console (a shell); Ctrl-D or EOF detaches",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, err := testenv.Attach(cfg())
			if err != nil {
				return err
			}
			sock, err := tb.ConsoleSocket(args[0])
			if err != nil {
				return err
			}
			conn, err := net.Dial("unix", sock)
			if err != nil {
				return fmt.Errorf("console of %s: %w", args[0], err)
			}
			defer conn.Close()
			go func() { _, _ = io.Copy(stdout, conn) }()
			_, err = io.Copy(conn, stdin)
			return err
		},
	}

	pause := &cobra.Command{
		Use:   "pause HOST",
		Short: "Stop a host's CPUs (QMP stop)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, err := testenv.Attach(cfg())
			if err != nil {
				return err
			}
			return tb.Pause(cmd.Context(), args[0])
		},
	}
	resume := &cobra.Command{
		Use:   "resume HOST",
		Short: "Resume a paused host (QMP cont)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, err := testenv.Attach(cfg())
			if err != nil {
				return err
			}
			return tb.Resume(cmd.Context(), args[0])
		},
	}

	var results string
	var withLibvirt bool
	demo := &cobra.Command{
		Use:   "demo",
		Short: "Run the cable-pull scenarios on a fresh testbed and print their timelines",
		Long: `Run the cable-pull scenarios on a fresh testbed and print their timelines.

With --libvirt, the libvirt scenario follows on a second testbed: two L2
guests under a real libvirtd (net_failover and hot-swap) and a guest bond as
the baseline, through the same kind of pull; then the net_failover guest is
live-migrated with virsh to a second libvirt host. TCG inside TCG makes it
slow: about 25 minutes on two cores.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := cfg()
			if !cmd.Flags().Changed("name") {
				c.Name = "demo"
			}
			if err := scenario.Demo(cmd.Context(), c, results, stdout); err != nil {
				return err
			}
			if !withLibvirt {
				return nil
			}
			return scenario.DemoLibvirt(cmd.Context(), c, results, stdout)
		},
	}
	demo.Flags().StringVar(&results, "results", "results", "directory for the timeline JSON and picture")
	demo.Flags().BoolVar(&withLibvirt, "libvirt", false, "also run the libvirt L2 guests scenario, pull and migration (about 25 minutes)")

	root.AddCommand(up, down, status, pull, plug, execCmd, console, pause, resume, demo)
	return root
}
