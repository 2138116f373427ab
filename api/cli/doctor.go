package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vflag/vflag/doctor"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr/config"
)

// Option changes what New builds.
type Option func(*options)

type options struct {
	preflight doctor.Preflighter
}

// WithPreflighter gives `vflag doctor` the NIC backends' own checks.
func WithPreflighter(p doctor.Preflighter) Option {
	return func(o *options) { o.preflight = p }
}

// ExitError ends the program with Code instead of 1: `vflag doctor` exits
// 1 with warnings and 2 with failures.
type ExitError struct {
	// Code is the exit status.
	Code int
	// Msg is what to print on stderr.
	Msg string
}

func (e *ExitError) Error() string { return e.Msg }

// ExitCode is the exit status for a command's error: 0 for none, an
// ExitError's Code, 1 for any other.
func ExitCode(err error) int {
	var e *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Code
	}
	return 1
}

const doctorLong = `Check, without changing anything, every precondition of the mode the
configuration asks for on this host, and print each finding with the one
line that fixes it: the configuration itself (errors at file:line), the
kernel and its modules (ice VF-LAG needs 6.6, rdma_rxe for rdma: soft,
vfio-pci), the IOMMU, libvirt and vflag's qemu hook, vflagd's socket, and
per bond: the bond (active-backup, link monitoring, its ports), the NIC
backend and mode, each PF's driver, firmware, SR-IOV VF counts, eswitch
mode and LLDP agent where the hardware mode needs them, spoofchk and trust
on the VFs in use, and RDMA in the bond's mode (device, port state, GIDs).

Run it as root: some of it (VF settings, vflagd's socket) is root's.

Exit status:
  0  nothing worse than info
  1  warnings: vflag works, but not as configured or with less (speed,
     hardware offload, security)
  2  failures: the configured mode cannot work until they are fixed

--json prints {"config", "findings": [{section, check, subject, severity,
detail, fix}], "summary": {ok, info, warn, fail, worst, exit}}.`

// doctorCommand is `vflag doctor`.
func doctorCommand(stdout io.Writer, asJSON *bool, socket *string, o options) *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this host against the configured mode; exit 0 ok, 1 warnings, 2 failures",
		Long:  doctorLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := doctor.System()
			d.Preflight = o.preflight
			if d.Preflight == nil {
				d.Preflight = backendPreflight(cfgPath)
			}
			opts := doctor.Options{Config: cfgPath}
			if cmd.Flags().Changed("socket") {
				opts.Socket = *socket
			}
			r := d.Check(cmd.Context(), opts)
			var err error
			if *asJSON {
				err = r.WriteJSON(stdout)
			} else {
				err = r.WriteText(stdout)
			}
			if err != nil {
				return err
			}
			if code := r.ExitCode(); code != doctor.ExitOK {
				return &ExitError{Code: code, Msg: fmt.Sprintf("doctor: %s", r.Summary())}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", config.DefaultPath, "vflagd's configuration file")
	return cmd
}

// backendPreflight asks the bond's NIC backend itself: it starts the
// backend binary the configuration at cfgPath names (or the default one,
// checked against its .sha256 as vflagd does), calls Preflight and stops
// it. A backend that cannot start is a finding of its own (doctor reports
// the error with the binary's name).
func backendPreflight(cfgPath string) doctor.Preflighter {
	return doctor.PreflightFunc(func(ctx context.Context, backend string, spec plugin.BondSpec) ([]plugin.Finding, error) {
		bin := config.BackendBinary{}
		if cfg, err := config.Load(cfgPath); err == nil {
			bin = cfg.Backends.Binary(config.Backend(backend))
		}
		c, err := plugin.Launch(ctx, plugin.Config{Name: backend, Path: bin.Path, SHA256: bin.SHA256})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.Preflight(ctx, spec)
	})
}
