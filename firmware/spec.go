package firmware

import (
	"errors"
	"fmt"

	"github.com/vflag/vflag/plugin"
)

// ErrBadSpec: a BondSpec a backend cannot act on (no bond, a port missing
// or given twice, no VFs, an unknown mode).
var ErrBadSpec = errors.New("invalid bond spec")

// CheckSpec checks that spec names a bond, two distinct ports, at least
// one VF per port and a known mode.
func CheckSpec(spec plugin.BondSpec) error {
	switch {
	case spec.Bond == "":
		return fmt.Errorf("no bond named: %w", ErrBadSpec)
	case spec.Ports[0] == "" || spec.Ports[1] == "":
		return fmt.Errorf("bond %s: ports %q and %q: both must be named: %w", spec.Bond, spec.Ports[0], spec.Ports[1], ErrBadSpec)
	case spec.Ports[0] == spec.Ports[1]:
		return fmt.Errorf("bond %s: port %s given twice: %w", spec.Bond, spec.Ports[0], ErrBadSpec)
	case spec.VFsPerPF < 1:
		return fmt.Errorf("bond %s: %d VFs per PF: %w", spec.Bond, spec.VFsPerPF, ErrBadSpec)
	case spec.Mode != plugin.ModeSoftware && spec.Mode != plugin.ModeHardware:
		return fmt.Errorf("bond %s: mode %q, expected %s or %s: %w", spec.Bond, spec.Mode, plugin.ModeSoftware, plugin.ModeHardware, ErrBadSpec)
	}
	return nil
}
