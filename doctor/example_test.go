package doctor_test

import (
	"context"
	"os"

	"github.com/vflag/vflag/doctor"
	"github.com/vflag/vflag/plugin"
)

// Check this host against /etc/vflag/vflag.yaml, as `vflag doctor` does,
// with the NIC backends' own findings, and exit with the status for
// automation. (Not run: its findings are this host's.)
func ExampleDoctor_Check() {
	d := doctor.System()
	d.Preflight = doctor.PreflightFunc(func(ctx context.Context, backend string, spec plugin.BondSpec) ([]plugin.Finding, error) {
		return nil, nil // ask the backend plugin named backend: Preflight(ctx, spec)
	})
	r := d.Check(context.Background(), doctor.Options{Config: "/etc/vflag/vflag.yaml"})
	_ = r.WriteText(os.Stdout) // or r.WriteJSON
	os.Exit(r.ExitCode())      // 0 ok, 1 warnings, 2 failures
}
