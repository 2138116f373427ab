package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// fakeBackend is an in-memory NIC pair (pf0, pf1 in bond0, 4 VFs each)
// behind the Backend interface, for the contract tests and the backend
// processes the tests run. mode changes what it does:
//
//   - "hang": ConfigureVF never returns, whatever its context says;
//   - "crash": ConfigureVF of VF 13 ends the process;
//   - "bad-plan": PlanFailover adds a VF it was not asked about;
//   - "": none of that.
type fakeBackend struct {
	name string
	mode string
	// log, when set, gets a line per released VF.
	log *slog.Logger

	// mu guards pfs.
	mu  sync.Mutex
	pfs map[string]*fakePF
}

type fakePF struct {
	pf  vfmgr.PF
	vfs []vfmgr.VF
}

var _ Backend = (*fakeBackend)(nil)

func newFake(name, mode string) *fakeBackend {
	b := &fakeBackend{name: name, mode: mode, pfs: map[string]*fakePF{}}
	for i, n := range []string{"pf0", "pf1"} {
		p := &fakePF{pf: vfmgr.PF{
			Name: n, PCI: fmt.Sprintf("0000:0%d:00.0", i+1), Driver: "igb", Bond: "bond0", TotalVFs: 7, NumVFs: 4, Carrier: i == 0,
		}}
		for j := range 4 {
			p.vfs = append(p.vfs, vfmgr.VF{PF: n, Index: j, PCI: fmt.Sprintf("0000:0%d:10.%d", i+1, j), SpoofChk: true})
		}
		b.pfs[n] = p
	}
	// One VF in use, with every field set.
	b.pfs["pf0"].vfs[1] = vfmgr.VF{
		PF: "pf0", Index: 1, PCI: "0000:01:10.1", Netdev: "enp1s16f1", Driver: "igbvf", MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1},
		VLAN: 100, QoS: 3, SpoofChk: true, Trust: true,
	}
	return b
}

func (b *fakeBackend) pf(name string) (*fakePF, error) {
	p, ok := b.pfs[name]
	if !ok {
		return nil, fmt.Errorf("PF %s: %w", name, syscall.ENODEV)
	}
	return p, nil
}

func (b *fakeBackend) vf(pf string, idx int) (*vfmgr.VF, error) {
	p, err := b.pf(pf)
	if err != nil {
		return nil, err
	}
	if idx < 0 || idx >= len(p.vfs) {
		return nil, fmt.Errorf("%s (%s) vf %d: %d VFs: %w", pf, p.pf.PCI, idx, len(p.vfs), fs.ErrNotExist)
	}
	return &p.vfs[idx], nil
}

func (b *fakeBackend) Info(context.Context) (Info, error) {
	return Info{Name: b.name, Version: "1.2.3", Drivers: []string{"igb", "igbvf"}}, nil
}

func (b *fakeBackend) Probe(_ context.Context, spec BondSpec) (Capabilities, error) {
	if spec.Bond != "bond0" {
		return Capabilities{}, fmt.Errorf("probe: bond %q: %w", spec.Bond, vfmgr.ErrNotManaged)
	}
	return Capabilities{
		Backend: b.name,
		Ports: []Port{
			{Name: spec.Ports[0], PCI: "0000:01:00.0", Driver: "igb", Firmware: "1.2.3", TotalVFs: 7},
			{Name: spec.Ports[1], PCI: "0000:02:00.0", Driver: "igb", TotalVFs: 7},
		},
		HardwareFollow: true, HardwarePorts: []string{spec.Ports[0]}, MaxVFsPerPF: 64,
	}, nil
}

func (b *fakeBackend) findings(spec BondSpec) []Finding {
	return []Finding{
		{Check: "total-vfs", Subject: spec.Ports[0], Severity: SeverityOK, Detail: "7 VFs, " + fmt.Sprint(spec.VFsPerPF) + " needed"},
		{Check: "mode", Subject: spec.Bond, Severity: SeverityWarn, Detail: "mode " + string(spec.Mode), Fix: "set it"},
		{Check: "odd", Severity: Severity(7), Detail: "a severity from a newer backend"},
	}
}

func (b *fakeBackend) Preflight(_ context.Context, spec BondSpec) ([]Finding, error) {
	return b.findings(spec), nil
}

func (b *fakeBackend) PrepareBond(_ context.Context, spec BondSpec) ([]Finding, error) {
	if spec.Mode == ModeHardware {
		return nil, fmt.Errorf("prepare %s: hardware mode on igb: %w", spec.Bond, errors.ErrUnsupported)
	}
	return b.findings(spec), nil
}

func (b *fakeBackend) PF(_ context.Context, name string) (vfmgr.PF, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := b.pf(name)
	if err != nil {
		return vfmgr.PF{}, err
	}
	return p.pf, nil
}

func (b *fakeBackend) VFs(_ context.Context, pf string) ([]vfmgr.VF, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := b.pf(pf)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(p.vfs)
	for i := range out {
		out[i].MAC = slices.Clone(out[i].MAC)
	}
	return out, nil
}

func (b *fakeBackend) SetNumVFs(_ context.Context, pf string, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, err := b.pf(pf)
	if err != nil {
		return err
	}
	if n > p.pf.TotalVFs {
		return fmt.Errorf("%s: %d VFs, sriov_totalvfs %d: %w", pf, n, p.pf.TotalVFs, vfmgr.ErrInvalid)
	}
	return nil
}

func (b *fakeBackend) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	switch {
	case b.mode == "hang":
		select {}
	case b.mode == "crash" && idx == 13:
		os.Exit(3)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configure %s vf %d: %w", pf, idx, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.vf(pf, idx)
	if err != nil {
		return fmt.Errorf("configure %w", err)
	}
	v.MAC, v.VLAN, v.QoS, v.SpoofChk, v.Trust = slices.Clone(cfg.MAC), cfg.VLAN, cfg.QoS, cfg.SpoofChk, cfg.Trust
	return nil
}

func (b *fakeBackend) ReleaseVF(_ context.Context, pf string, idx int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.vf(pf, idx)
	if err != nil {
		return fmt.Errorf("release %w", err)
	}
	v.MAC, v.VLAN, v.QoS = nil, 0, 0
	if b.log != nil {
		b.log.Warn("VF released", "pf", pf, "vf", idx)
	}
	return nil
}

// PlanFailover carries the VFs of the primary (pf0) in hardware and
// re-homes the others.
func (b *fakeBackend) PlanFailover(_ context.Context, req FailoverRequest) (FailoverPlan, error) {
	plan := FailoverPlan{Bond: req.Bond, From: req.From, To: req.To}
	for _, v := range req.VFs {
		if v.PF == "pf0" && v.Index%2 == 0 {
			plan.Hardware = append(plan.Hardware, v)
		} else {
			plan.Software = append(plan.Software, v)
		}
	}
	if b.mode == "bad-plan" {
		plan.Hardware = append(plan.Hardware, vfmgr.VFRef{PF: req.To, Index: 5})
	}
	return plan, nil
}

func (b *fakeBackend) VerifyFailover(_ context.Context, plan FailoverPlan) ([]Finding, error) {
	if plan.Bond != "bond0" {
		return nil, fmt.Errorf("verify: bond %q: %w", plan.Bond, ErrPlanOutOfBounds)
	}
	var fs []Finding
	for _, v := range plan.Hardware {
		fs = append(fs, Finding{Check: "vf-lag", Subject: v.String(), Severity: SeverityFail, Detail: "still on " + plan.From})
	}
	return fs, nil
}
