package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/daemon"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// fakeNIC is a NIC backend over the fake kernel: the SR-IOV calls go to
// the kernel (ReleaseVF recorded as "release pf0 vf 0"), and what a NIC
// family adds (prepare, probe, failover plan, verification) is scripted
// and recorded.
type fakeNIC struct {
	k *fakeKernel

	// caps is what Probe says.
	caps plugin.Capabilities
	// prepared is what PrepareBond finds.
	prepared []plugin.Finding
	// plan, when set, rewrites the backend's plan (which carries the even
	// VFs of pf0).
	plan func(plugin.FailoverPlan) plugin.FailoverPlan
	// verified is what VerifyFailover finds.
	verified []plugin.Finding

	// mu guards calls.
	mu    sync.Mutex
	calls []string
}

var _ plugin.Backend = (*fakeNIC)(nil)

func (n *fakeNIC) record(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, fmt.Sprintf(format, args...))
}

func (n *fakeNIC) takeCalls() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := lines(n.calls...)
	n.calls = nil
	return s
}

func (n *fakeNIC) Info(context.Context) (plugin.Info, error) {
	return plugin.Info{Name: "fake"}, nil
}

func (n *fakeNIC) Probe(_ context.Context, spec plugin.BondSpec) (plugin.Capabilities, error) {
	n.record("probe %s %s+%s %d VFs %s", spec.Bond, spec.Ports[0], spec.Ports[1], spec.VFsPerPF, spec.Mode)
	return n.caps, nil
}

func (n *fakeNIC) Preflight(context.Context, plugin.BondSpec) ([]plugin.Finding, error) {
	return nil, nil
}

func (n *fakeNIC) PrepareBond(_ context.Context, spec plugin.BondSpec) ([]plugin.Finding, error) {
	n.record("prepare %s %s+%s %d VFs %s", spec.Bond, spec.Ports[0], spec.Ports[1], spec.VFsPerPF, spec.Mode)
	return n.prepared, nil
}

func (n *fakeNIC) PF(ctx context.Context, name string) (vfmgr.PF, error) { return n.k.PF(ctx, name) }

func (n *fakeNIC) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) { return n.k.VFs(ctx, pf) }

func (n *fakeNIC) SetNumVFs(ctx context.Context, pf string, c int) error {
	return n.k.SetNumVFs(ctx, pf, c)
}

func (n *fakeNIC) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	return n.k.ConfigureVF(ctx, pf, idx, cfg)
}

func (n *fakeNIC) ReleaseVF(_ context.Context, pf string, idx int) error {
	n.k.mu.Lock()
	defer n.k.mu.Unlock()
	if err := n.k.call(func() string { return fmt.Sprintf("release %s vf %d", pf, idx) }); err != nil {
		return fmt.Errorf("release %s vf %d: %w", pf, idx, err)
	}
	return n.k.set(pf, idx, sriov.VFConfig{SpoofChk: true})
}

func (n *fakeNIC) PlanFailover(_ context.Context, req plugin.FailoverRequest) (plugin.FailoverPlan, error) {
	var refs []string
	for _, v := range req.VFs {
		refs = append(refs, v.String())
	}
	n.record("plan %s %s->%s: %s", req.Bond, req.From, req.To, strings.Join(refs, ", "))
	plan := plugin.FailoverPlan{Bond: req.Bond, From: req.From, To: req.To}
	for _, v := range req.VFs {
		if v.PF == "pf0" && v.Index%2 == 0 {
			plan.Hardware = append(plan.Hardware, v)
		} else {
			plan.Software = append(plan.Software, v)
		}
	}
	if n.plan != nil {
		plan = n.plan(plan)
	}
	return plan, nil
}

func (n *fakeNIC) VerifyFailover(_ context.Context, plan plugin.FailoverPlan) ([]plugin.Finding, error) {
	n.record("verify %s %s->%s: %d in hardware", plan.Bond, plan.From, plan.To, len(plan.Hardware))
	return n.verified, nil
}

// vfLAG is what an ice backend probes on a bond whose primary is pf0.
var vfLAG = plugin.Capabilities{Backend: "fake", HardwareFollow: true, HardwarePorts: []string{"pf0"}}

// nicHarness is the harness of s with its daemon rebuilt to reach the
// kernel through nic (daemon.BackendKernel) and to ask nic about bond0,
// in the given mode; log gets the daemon's log.
func nicHarness(t *testing.T, s setup, nic *fakeNIC, mode plugin.Mode) (*harness, *syncBuffer) {
	t.Helper()
	h := newHarness(t, s)
	nic.k = h.kernel
	log := &syncBuffer{}
	h.d = daemon.New(daemon.Options{
		Bonds: []daemon.BondConfig{{
			Name: "bond0", PFs: [2]string{"pf0", "pf1"}, VFsPerPF: 4, Policy: vfmgr.ActiveFirst, Mode: mode,
		}},
		HoldDown:         s.holdDown,
		RARPWithoutAddrs: s.rarp,
		ParallelMoves:    1,
		Kernel:           daemon.BackendKernel{ByPF: map[string]plugin.Backend{"pf0": nic, "pf1": nic}},
		NICs:             map[string]plugin.Backend{"bond0": nic},
		BondCtl:          h.bonds,
		Store:            h.store,
		VMs:              h.vms,
		Announcer:        h.ann,
		Metrics:          h.metrics,
		Log:              slog.New(slog.NewTextHandler(log, nil)),
	})
	events, cancel := h.d.Subscribe()
	h.events = events
	t.Cleanup(cancel)
	t.Cleanup(h.d.Close)
	return h, log
}

// syncBuffer is a bytes.Buffer the daemon's goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestBackendKernelReleasesVFs(t *testing.T) {
	nic := &fakeNIC{}
	h, _ := nicHarness(t, setup{}, nic, "")
	if err := h.d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := nic.takeCalls(), "prepare bond0 pf0+pf1 4 VFs software\nprobe bond0 pf0+pf1 4 VFs software\n"; got != want {
		t.Errorf("backend calls at start:\n%swant\n%s", got, want)
	}
	h.attach(1, 100, false)
	h.drain()
	if _, err := h.d.Detach(context.Background(), "vm1", ""); err != nil {
		t.Fatal(err)
	}
	diff(t, "kernel calls of a detach", h.kernel.takeCalls(), "release pf0 vf 0\n")
	if err := (daemon.BackendKernel{}).ResetVF(context.Background(), "pf7", 1); err == nil ||
		err.Error() != "PF pf7: no backend serves it: not managed by vflag" {
		t.Errorf("ResetVF of a PF without backend: %v", err)
	}
}

func TestPrepareBondFailStopsStart(t *testing.T) {
	nic := &fakeNIC{prepared: []plugin.Finding{
		{Check: "num-vfs", Subject: "pf0", Severity: plugin.SeverityOK, Detail: "pf0 has 4 VFs"},
		{Check: "eswitch-mode", Subject: "pf1", Severity: plugin.SeverityFail, Detail: "eswitch mode is legacy", Fix: "devlink dev eswitch set pci/0000:02:00.0 mode switchdev"},
	}}
	h, log := nicHarness(t, setup{}, nic, plugin.ModeHardware)
	err := h.d.Start(context.Background())
	want := "bond bond0: prepare for hardware mode: fail eswitch-mode pf1: eswitch mode is legacy (fix: devlink dev eswitch set pci/0000:02:00.0 mode switchdev)"
	if err == nil || err.Error() != want {
		t.Errorf("Start: %v\nwant %s", err, want)
	}
	if !strings.Contains(log.String(), `level=ERROR msg="prepare: eswitch-mode" bond=bond0 mode=hardware subject=pf1 severity=fail detail="eswitch mode is legacy" fix="devlink dev eswitch set pci/0000:02:00.0 mode switchdev"`) {
		t.Errorf("the findings are not logged:\n%s", log)
	}
	diff(t, "kernel calls", h.kernel.takeCalls(), "")
}

func TestHardwareFollow(t *testing.T) {
	tests := []struct {
		name string
		nic  *fakeNIC
		// wantNIC are the backend's calls on the failover.
		wantNIC, wantCalls, wantVMs, wantEvents, wantLog string
		// wantAnnounced is the announcements when not each VM once on pf1.
		wantAnnounced string
	}{{
		name: "the NIC carries the primary's even VFs",
		nic:  &fakeNIC{caps: vfLAG},
		// The carried VMs stay on pf0 in the table: the bond's next event
		// (active-changed) plans them again, and they are asked about and
		// announced again.
		wantNIC: lines(
			"plan bond0 pf0->pf1: pf0 vf 0, pf0 vf 1, pf0 vf 2",
			"verify bond0 pf0->pf1: 2 in hardware",
			"plan bond0 pf0->pf1: pf0 vf 0, pf0 vf 2",
			"verify bond0 pf0->pf1: 2 in hardware",
		),
		wantCalls: lines(
			"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
			"release pf0 vf 1",
		),
		wantVMs: lines(
			"vm1/net0 52:54:00:00:00:01 vlan 100 on pf0 vf 0",
			"vm2/net0 52:54:00:00:00:02 vlan 0 on pf1 vf 1",
			"vm3/net0 52:54:00:00:00:03 vlan 200 on pf0 vf 2",
		),
		wantAnnounced: lines(
			"announce pf1 52:54:00:00:00:01 vlan 100 addrs 198.18.0.1",
			"announce pf1 52:54:00:00:00:01 vlan 100 addrs 198.18.0.1",
			"announce pf1 52:54:00:00:00:02 vlan 0 addrs none",
			"announce pf1 52:54:00:00:00:03 vlan 200 addrs none",
			"announce pf1 52:54:00:00:00:03 vlan 200 addrs none",
		),
		wantEvents: "failover bond0 pf0 moved 1: carrier-lost: 1 moved, 2 carried by the NIC, 0 failed\n",
		wantLog:    `msg="VF carried by the NIC; announcing only" bond=bond0 vm=vm1 mac=52:54:00:00:00:01 vf="pf0 vf 0" port=pf1`,
	}, {
		name: "a plan touching a VF not in the request",
		nic: &fakeNIC{caps: vfLAG, plan: func(p plugin.FailoverPlan) plugin.FailoverPlan {
			p.Hardware = append(p.Hardware, vfmgr.VFRef{PF: "pf1", Index: 3})
			return p
		}},
		wantNIC:    "plan bond0 pf0->pf1: pf0 vf 0, pf0 vf 1, pf0 vf 2\n",
		wantCalls:  movedAll,
		wantVMs:    allOnPF1,
		wantEvents: "failover bond0 pf0 moved 3: carrier-lost: 3 moved, 0 failed\n",
		wantLog:    `msg="backend's failover plan rejected; re-homing the whole bond in software" bond=bond0 from=pf0 to=pf1 err="plan touches pf1 vf 3, which is not in use on pf0: failover plan does not match the request"`,
	}, {
		name: "a failing verification",
		nic: &fakeNIC{caps: vfLAG, verified: []plugin.Finding{
			{Check: "vf-lag", Subject: "pf0 vf 0", Severity: plugin.SeverityFail, Detail: "VF traffic still on pf0"},
		}},
		wantNIC:    "plan bond0 pf0->pf1: pf0 vf 0, pf0 vf 1, pf0 vf 2\nverify bond0 pf0->pf1: 2 in hardware\n",
		wantCalls:  movedAll,
		wantVMs:    allOnPF1,
		wantEvents: "failover bond0 pf0 moved 3: carrier-lost: 3 moved, 0 failed\n",
		wantLog:    `msg="the NIC did not carry the VFs its backend planned to; re-homing the whole bond in software" bond=bond0 from=pf0 to=pf1 hardware=2`,
	}, {
		name:       "a NIC without hardware follow is not asked",
		nic:        &fakeNIC{caps: plugin.Capabilities{Backend: "fake", Reason: "igb has no VF-LAG"}},
		wantCalls:  movedAll,
		wantVMs:    allOnPF1,
		wantEvents: "failover bond0 pf0 moved 3: carrier-lost: 3 moved, 0 failed\n",
		wantLog:    `msg="NIC backend ready" bond=bond0 mode=hardware backend=fake hardware_follow=false hardware_ports=[] reason="igb has no VF-LAG"`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, log := nicHarness(t, setup{rarp: true}, tc.nic, plugin.ModeHardware)
			if err := h.d.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			h.run()
			attachThree(h)
			tc.nic.takeCalls()
			h.cut("pf0", 10*time.Millisecond)
			h.sync()
			diff(t, "backend calls", tc.nic.takeCalls(), tc.wantNIC)
			diff(t, "kernel calls", h.kernel.takeCalls(), tc.wantCalls)
			diff(t, "VMs", h.tableText(), tc.wantVMs)
			// Every VM is announced on the surviving port, moved or not.
			want := tc.wantAnnounced
			if want == "" {
				want = lines(
					"announce pf1 52:54:00:00:00:01 vlan 100 addrs 198.18.0.1",
					"announce pf1 52:54:00:00:00:02 vlan 0 addrs none",
					"announce pf1 52:54:00:00:00:03 vlan 200 addrs none",
				)
			}
			diff(t, "announcements", h.ann.take(), want)
			if got := h.takeEvents(); !strings.HasPrefix(got, tc.wantEvents) {
				t.Errorf("events:\n%swant first\n%s", got, tc.wantEvents)
			}
			if !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("the log does not say\n%s\nlog:\n%s", tc.wantLog, log)
			}
		})
	}
}

var (
	movedAll = lines(
		"configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off",
		"release pf0 vf 0",
		"configure pf1 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		"release pf0 vf 1",
		"configure pf1 vf 2 mac 52:54:00:00:00:03 vlan 200 qos 3 spoofchk on trust on",
		"release pf0 vf 2",
	)
	allOnPF1 = lines(
		"vm1/net0 52:54:00:00:00:01 vlan 100 on pf1 vf 0",
		"vm2/net0 52:54:00:00:00:02 vlan 0 on pf1 vf 1",
		"vm3/net0 52:54:00:00:00:03 vlan 200 on pf1 vf 2",
	)
)

// TestResyncTouchesNoVM: after a backend restart the daemon re-reads the
// kernel and puts right what a lost backend process left half done, but
// moves, unplugs and resets no VM's VF.
func TestResyncTouchesNoVM(t *testing.T) {
	nic := &fakeNIC{}
	h, _ := nicHarness(t, setup{}, nic, "")
	if err := h.d.Resync(context.Background(), "before start"); err != nil {
		t.Fatalf("Resync before Start: %v", err)
	}
	if err := h.d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.run()
	attachThree(h)
	before := h.tableText()
	// What a backend killed in the middle of two calls leaves: vm2's VF
	// configured but for its VLAN... and a free VF with a MAC.
	h.kernel.setVF("pf0", 1, "52:54:00:00:00:02", 4000)
	h.kernel.setVF("pf1", 3, "52:54:00:00:00:01", 100)
	if err := h.d.Resync(context.Background(), "backend fake restarted"); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	diff(t, "kernel calls", h.kernel.takeCalls(), lines(
		"configure pf0 vf 1 mac 52:54:00:00:00:02 vlan 0 qos 0 spoofchk on trust off",
		"release pf1 vf 3",
	))
	diff(t, "VM side calls", h.vms.takeCalls(), "")
	diff(t, "VMs", h.tableText(), before)
}

// TestHardwareFollowPinned: interfaces vflagd may not move itself (here
// Nova's adopted VFs) are still asked about on a hardware-follow bond;
// the one the NIC carries is announced on the surviving port, the other
// stays unplaceable. No VF is touched.
func TestHardwareFollowPinned(t *testing.T) {
	nic := &fakeNIC{caps: vfLAG}
	h, _ := nicHarness(t, setup{rarp: true}, nic, plugin.ModeHardware)
	if err := h.d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.run()
	for i, pci := range []string{"0000:01:10.0", "0000:01:10.1"} {
		if _, err := h.d.Attach(context.Background(), &vflagpb.AttachRequest{
			Vm: fmt.Sprintf("nova%d", i), Iface: "net0", Mac: testMAC(i + 1), Vlan: 100, Pci: pci, Mode: string(vfmgr.ModeAdopt),
		}); err != nil {
			t.Fatal(err)
		}
	}
	h.drain()
	nic.takeCalls()
	h.kernel.takeCalls()
	h.ann.take()
	h.cut("pf0", 10*time.Millisecond)
	h.sync()
	// Asked on carrier-lost and again on the bond's active-changed (the
	// carried VM stays on its VF in the table), as for movable VMs.
	diff(t, "backend calls", nic.takeCalls(), lines(
		"plan bond0 pf0->pf1: pf0 vf 0, pf0 vf 1",
		"verify bond0 pf0->pf1: 1 in hardware",
		"plan bond0 pf0->pf1: pf0 vf 0, pf0 vf 1",
		"verify bond0 pf0->pf1: 1 in hardware",
	))
	diff(t, "kernel calls", h.kernel.takeCalls(), "")
	diff(t, "announcements", h.ann.take(), lines(
		"announce pf1 52:54:00:00:00:01 vlan 100 addrs none",
		"announce pf1 52:54:00:00:00:01 vlan 100 addrs none",
	))
	diff(t, "VMs", h.tableText(), lines(
		"nova0/net0 52:54:00:00:00:01 vlan 100 on pf0 vf 0",
		"nova1/net0 52:54:00:00:00:02 vlan 100 on pf0 vf 1",
	))
	if got := h.takeEvents(); !strings.Contains(got, "unplaceable bond0 pf0 52:54:00:00:00:02: pf0 has no carrier") ||
		strings.Contains(got, "unplaceable bond0 pf0 52:54:00:00:00:01") || !strings.Contains(got, "carrier-lost: 1 carried by the NIC") {
		t.Errorf("events: want nova1 unplaceable and nova0 not:\n%s", got)
	}
}
