package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// Backend is what vflagd asks of a NIC family (firmware/generic,
// firmware/ice, firmware/mlx5). vflagd runs each backend out of process
// over go-plugin gRPC (see Client and Serve), so every method takes a
// context whose deadline crosses the process boundary. Methods that only
// read (Info, Probe, Preflight, PF, VFs, PlanFailover, VerifyFailover)
// must not change the host.
type Backend interface {
	// Info names the backend and the drivers it serves.
	Info(ctx context.Context) (Info, error)
	// Probe reports the bond's ports and what the NIC can do for a bond
	// of them: whether the hardware carries VF traffic to the other port
	// on failover and, when it cannot, exactly why.
	Probe(ctx context.Context, spec BondSpec) (Capabilities, error)
	// Preflight checks every precondition of spec.Mode without changing
	// anything; each finding carries its one-line fix.
	Preflight(ctx context.Context, spec BondSpec) ([]Finding, error)
	// PrepareBond puts the NIC in the state spec.Mode needs (eswitch
	// mode, LLDP agent, VF count, ...). It is idempotent; an error names
	// the step and the port that failed, and what it had done before.
	PrepareBond(ctx context.Context, spec BondSpec) ([]Finding, error)

	// PF, VFs, SetNumVFs, ConfigureVF and ReleaseVF are the SR-IOV side
	// of the kernel as vflagd's executor uses it (vfmgr/sriov).
	PF(ctx context.Context, name string) (vfmgr.PF, error)
	VFs(ctx context.Context, pf string) ([]vfmgr.VF, error)
	SetNumVFs(ctx context.Context, pf string, n int) error
	ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error
	// ReleaseVF clears what ConfigureVF set (MAC, VLAN), so the VF is
	// free and carries nothing of its last VM.
	ReleaseVF(ctx context.Context, pf string, idx int) error

	// PlanFailover splits the VFs in use on req.From into those the NIC
	// carries to req.To by itself (Hardware: vflagd leaves the VM alone
	// and only announces) and those vflagd re-homes in software.
	// Every VF of req.VFs must appear exactly once in the plan, and no
	// other (CheckPlan).
	PlanFailover(ctx context.Context, req FailoverRequest) (FailoverPlan, error)
	// VerifyFailover checks, once the bond has switched, that the
	// hardware did what the plan said; failing findings make vflagd
	// re-home those VFs in software after all.
	VerifyFailover(ctx context.Context, plan FailoverPlan) ([]Finding, error)
}

// Mode is how a bond's VFs follow a failover.
type Mode string

// The modes.
const (
	// ModeSoftware: vflagd re-homes each VM to a VF of the new port.
	ModeSoftware Mode = "software"
	// ModeHardware: the NIC's VF-LAG carries VFs to the new port; vflagd
	// verifies and announces (and re-homes what the NIC cannot carry).
	ModeHardware Mode = "hardware"
)

// Info names a backend.
type Info struct {
	// Name is "generic", "ice", "mlx5" or a vendor's own.
	Name string
	// Version is the backend's own version.
	Version string
	// Drivers are the PF drivers it serves (empty for generic: any).
	Drivers []string
}

// BondSpec is one managed bond as vflagd's configuration gives it.
type BondSpec struct {
	// Bond is the bond netdev.
	Bond string
	// Ports are its two PFs, primary first.
	Ports [2]string
	// VFsPerPF is how many VFs vflag uses on each port.
	VFsPerPF int
	// Mode is what the operator asked for.
	Mode Mode
}

// Port is a PF as a backend sees it.
type Port struct {
	Name, PCI, Driver string
	// Firmware is the NIC's firmware version ("" when unknown).
	Firmware string
	// TotalVFs is sriov_totalvfs.
	TotalVFs int
}

// Capabilities are what a NIC can do for one bond.
type Capabilities struct {
	// Backend is the backend that answered.
	Backend string
	// Ports are the bond's ports.
	Ports []Port
	// HardwareFollow: the NIC moves VF traffic to the other port on a
	// bond failover without the VF changing (ice and mlx5 VF-LAG).
	HardwareFollow bool
	// HardwarePorts are the ports whose VFs the hardware moves (ice: the
	// primary's only); VMs placed elsewhere need the software path.
	HardwarePorts []string
	// MaxVFsPerPF is the VF limit in hardware mode (mlx5: 64; 0: none).
	MaxVFsPerPF int
	// Reason says why HardwareFollow is false ("" when it is true).
	Reason string
}

// FailoverRequest asks a backend how the VFs in use on From follow the
// bond to To.
type FailoverRequest struct {
	Bond, From, To string
	// VFs are the VFs in use on From.
	VFs []vfmgr.VFRef
}

// FailoverPlan is a backend's answer to a FailoverRequest.
type FailoverPlan struct {
	Bond, From, To string
	// Hardware VFs stay where they are: the NIC carries them.
	Hardware []vfmgr.VFRef
	// Software VFs are re-homed by vflagd.
	Software []vfmgr.VFRef
}

// ErrPlanOutOfBounds: a backend's plan names a VF it was not asked about,
// or leaves one out.
var ErrPlanOutOfBounds = errors.New("failover plan does not match the request")

// CheckPlan checks that plan answers req: the same bond and ports, and
// every VF of req.VFs exactly once. vflagd rejects any other plan (a
// backend must not touch a VF it does not own).
func CheckPlan(req FailoverRequest, plan FailoverPlan) error {
	if plan.Bond != req.Bond || plan.From != req.From || plan.To != req.To {
		return fmt.Errorf("plan is for %s %s→%s, asked about %s %s→%s: %w",
			plan.Bond, plan.From, plan.To, req.Bond, req.From, req.To, ErrPlanOutOfBounds)
	}
	want := make(map[vfmgr.VFRef]bool, len(req.VFs))
	for _, v := range req.VFs {
		want[v] = true
	}
	seen := make(map[vfmgr.VFRef]bool, len(req.VFs))
	for _, list := range [][]vfmgr.VFRef{plan.Hardware, plan.Software} {
		for _, v := range list {
			if !want[v] {
				return fmt.Errorf("plan touches %s vf %d, which is not in use on %s: %w", v.PF, v.Index, req.From, ErrPlanOutOfBounds)
			}
			if seen[v] {
				return fmt.Errorf("plan names %s vf %d twice: %w", v.PF, v.Index, ErrPlanOutOfBounds)
			}
			seen[v] = true
		}
	}
	for _, v := range req.VFs {
		if !seen[v] {
			return fmt.Errorf("plan leaves out %s vf %d: %w", v.PF, v.Index, ErrPlanOutOfBounds)
		}
	}
	return nil
}
