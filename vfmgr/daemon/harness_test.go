package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/daemon"
	"github.com/vflag/vflag/vfmgr/store"
)

// The ifindexes of the test host's links, as rtnetlink numbers them: the
// PFs come up first, the bond is created over them.
const (
	loIndex   = 1
	bondIndex = 4
)

// pfIndex is the ifindex of pf0 or pf1.
func pfIndex(pf string) int {
	switch pf {
	case "pf0":
		return 2
	case "pf1":
		return 3
	}
	panic("unknown PF " + pf)
}

// setup describes the host a test daemon starts on: bond0 over pf0 and
// pf1, active-first.
type setup struct {
	// vfsPerPF is the configured VF count (4 when zero).
	vfsPerPF int
	// numVFs and totalVFs are each PF's sriov_numvfs and sriov_totalvfs
	// (vfsPerPF and 8 when zero; numVFs -1 means 0).
	numVFs, totalVFs [2]int
	// down lists the PFs without carrier.
	down [2]bool
	// active is the bond's active port (pf0 when empty, none when "-").
	active string
	// holdDown is the daemon's hold-down.
	holdDown time.Duration
	// parallel is Options.ParallelMoves (1 when zero: calls in plan order).
	parallel int
	// retryAfter is Options.RetryAfter (the default when zero).
	retryAfter time.Duration
	// rarp announces MACs without known addresses by RARP.
	rarp bool
	// flaky wraps the store so BeginMoves can be made to fail.
	flaky bool
	// quiet makes the fakes record nothing (benchmarks).
	quiet bool
	// domains gives the daemon a libvirt side (Options.Domains) on the
	// fake VM side.
	domains bool
	// prepare changes the kernel, the store or the VM side before the
	// daemon starts.
	prepare func(h *harness)
}

// harness is one daemon on fake kernel, bond, VM side and announcer, with
// a real store, and the link messages a test feeds its event loop.
type harness struct {
	t       testing.TB
	d       *daemon.Daemon
	kernel  *fakeKernel
	bonds   *fakeBonds
	vms     *fakeVMs
	domains *fakeDomains // nil unless setup.domains
	ann     *fakeAnnouncer
	store   *store.Store
	flaky   *flakyStore
	metrics *daemon.Metrics
	path    string
	events  <-chan *vflagpb.Event

	// msgs is the event loop's input; nil until run.
	msgs chan vfmgr.LinkMsg
	// at is the simulated clock of the link messages. It starts far ahead
	// of the wall clock: the event loop's timer (on the wall clock) never
	// fires, so the messages' times alone drive the hold-down.
	at time.Time
}

// newHarness builds the host of s and a daemon for it, not started.
func newHarness(t testing.TB, s setup) *harness {
	t.Helper()
	if s.vfsPerPF == 0 {
		s.vfsPerPF = 4
	}
	h := &harness{
		t:       t,
		kernel:  newFakeKernel(),
		bonds:   &fakeBonds{active: map[string]string{}},
		vms:     newFakeVMs(),
		ann:     &fakeAnnouncer{},
		metrics: daemon.NewMetrics(),
		path:    filepath.Join(t.TempDir(), "state.db"),
		at:      time.Now().Add(365 * 24 * time.Hour).Truncate(time.Second),
	}
	for i, name := range []string{"pf0", "pf1"} {
		pf := vfmgr.PF{
			Name: name, PCI: fmt.Sprintf("0000:0%d:00.0", i+1), Driver: "igb", Bond: "bond0",
			TotalVFs: 8, NumVFs: s.vfsPerPF, Carrier: !s.down[i],
		}
		if s.totalVFs[i] != 0 {
			pf.TotalVFs = s.totalVFs[i]
		}
		switch n := s.numVFs[i]; {
		case n < 0:
			pf.NumVFs = 0
		case n > 0:
			pf.NumVFs = n
		}
		h.kernel.addPF(pf)
	}
	switch s.active {
	case "":
		h.bonds.active["bond0"] = "pf0"
	case "-":
		h.bonds.active["bond0"] = ""
	default:
		h.bonds.active["bond0"] = s.active
	}
	st, err := store.Open(h.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.store = st
	t.Cleanup(func() { st.Close() })
	if s.prepare != nil {
		s.prepare(h)
	}
	h.kernel.quiet, h.vms.quiet, h.ann.quiet = s.quiet, s.quiet, s.quiet
	var ds daemon.Store = st
	if s.flaky {
		h.flaky = &flakyStore{Store: st}
		ds = h.flaky
	}
	if s.parallel == 0 {
		s.parallel = 1
	}
	opts := daemon.Options{
		Bonds: []daemon.BondConfig{{
			Name: "bond0", PFs: [2]string{"pf0", "pf1"}, VFsPerPF: s.vfsPerPF, Policy: vfmgr.ActiveFirst,
		}},
		HoldDown:         s.holdDown,
		RARPWithoutAddrs: s.rarp,
		// One move at a time, so the recorded calls come in plan order
		// (TestParallelMoves covers the default).
		ParallelMoves: s.parallel,
		RetryAfter:    s.retryAfter,
		Kernel:        h.kernel,
		BondCtl:       h.bonds,
		Store:         ds,
		VMs:           h.vms,
		Announcer:     h.ann,
		Metrics:       h.metrics,
	}
	if s.domains {
		h.domains = &fakeDomains{fakeVMs: h.vms}
		opts.Domains = h.domains
	}
	h.d = daemon.New(opts)
	events, cancel := h.d.Subscribe()
	h.events = events
	t.Cleanup(cancel)
	t.Cleanup(h.d.Close)
	return h
}

// started is newHarness and a successful Start.
func started(t testing.TB, s setup) *harness {
	t.Helper()
	h := newHarness(t, s)
	if err := h.d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return h
}

// running is started and the event loop running, fed the initial dump of
// the links (which changes nothing), with the records of Start taken.
func running(t testing.TB, s setup) *harness {
	t.Helper()
	h := started(t, s)
	h.run()
	return h
}

// run starts the event loop and feeds it rtnetlink's initial dump of the
// links, in ifindex order. Everything recorded before is dropped.
func (h *harness) run() {
	h.t.Helper()
	h.msgs = make(chan vfmgr.LinkMsg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.d.Run(ctx, h.msgs) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
	h.send(vfmgr.LinkMsg{Index: loIndex, Name: "lo", Carrier: true, OperUp: true, At: h.at})
	h.send(h.pfMsg("pf0"), h.pfMsg("pf1"), h.bondMsg())
	h.sync()
	h.drain()
}

// send feeds link messages to the event loop.
func (h *harness) send(msgs ...vfmgr.LinkMsg) {
	for _, m := range msgs {
		h.msgs <- m
	}
}

// sync returns once the event loop has handled every message sent and the
// announcements they caused are done: the loop takes one message at a
// time, so when it takes one more (about lo, which concerns no bond) it
// is through with the earlier ones. That message has the time of the last
// one, so it lets no further hold-down end: handling it does nothing.
func (h *harness) sync() {
	h.send(vfmgr.LinkMsg{Index: loIndex, Name: "lo", Carrier: true, OperUp: true, At: h.at})
	h.d.Close()
}

// drain drops the records of the fakes and the events so far.
func (h *harness) drain() {
	h.kernel.takeCalls()
	h.vms.takeCalls()
	h.ann.take()
	h.takeEvents()
}

// pfMsg is the RTM_NEWLINK of a PF as the kernel has it now.
func (h *harness) pfMsg(pf string) vfmgr.LinkMsg {
	p, err := h.kernel.PF(context.Background(), pf)
	if err != nil {
		h.t.Fatal(err)
	}
	return vfmgr.LinkMsg{
		Index: pfIndex(pf), Name: pf, MasterIndex: bondIndex, Carrier: p.Carrier, OperUp: p.Carrier, At: h.at,
	}
}

// bondMsg is the RTM_NEWLINK of the bond as the kernel has it now (no
// IFLA_BOND_ACTIVE_SLAVE when it has no active port).
func (h *harness) bondMsg() vfmgr.LinkMsg {
	m := vfmgr.LinkMsg{Index: bondIndex, Name: "bond0", IsBond: true, At: h.at}
	if a := h.bonds.get("bond0"); a != "" {
		m.ActiveSlaveIndex = pfIndex(a)
		m.Carrier, m.OperUp = true, true
	}
	return m
}

// other is the bond's other port.
func other(pf string) string {
	if pf == "pf0" {
		return "pf1"
	}
	return "pf0"
}

// cut takes pf's carrier away after d of simulated time, and the bond
// reacts as an active-backup bond with miimon does: if pf was its active
// port it makes the other one active if that has carrier, else has none.
func (h *harness) cut(pf string, d time.Duration) {
	h.at = h.at.Add(d)
	h.kernel.setCarrier(pf, false)
	h.send(h.pfMsg(pf))
	if h.bonds.get("bond0") == pf {
		next := other(pf)
		if p, _ := h.kernel.PF(context.Background(), next); !p.Carrier {
			next = ""
		}
		h.bonds.set("bond0", next)
		h.send(h.bondMsg())
	}
}

// restore gives pf its carrier back after d of simulated time; a bond
// without active port makes it active.
func (h *harness) restore(pf string, d time.Duration) {
	h.at = h.at.Add(d)
	h.kernel.setCarrier(pf, true)
	h.send(h.pfMsg(pf))
	if h.bonds.get("bond0") == "" {
		h.bonds.set("bond0", pf)
		h.send(h.bondMsg())
	}
}

// wait lets d of simulated time pass: a message about lo at the new time
// lets the hold-downs that ended by then take effect.
func (h *harness) wait(d time.Duration) {
	h.at = h.at.Add(d)
	h.send(vfmgr.LinkMsg{Index: loIndex, Name: "lo", Carrier: true, OperUp: true, At: h.at})
	h.sync()
}

// attach attaches VM vm<n>'s interface net0 with MAC testMAC(n); a VM
// with netns is a namespace VM whose guest has address 198.18.0.<n> (for
// n < 256).
func (h *harness) attach(n int, vlan uint32, netns bool) *vflagpb.VMInterface {
	h.t.Helper()
	i, err := h.d.Attach(context.Background(), attachReq(n, vlan, netns))
	if err != nil {
		h.t.Fatalf("attach vm%d: %v", n, err)
	}
	if netns {
		h.vms.setAddrs(fmt.Sprintf("vm%d", n), fmt.Sprintf("198.18.%d.%d", n>>8, n&0xff))
	}
	return i
}

// attachReq is what the libvirt hook (or, with netns, the testbed) asks
// for VM vm<n>.
func attachReq(n int, vlan uint32, netns bool) *vflagpb.AttachRequest {
	r := &vflagpb.AttachRequest{Vm: fmt.Sprintf("vm%d", n), Iface: "net0", Mac: testMAC(n), Vlan: vlan}
	if netns {
		r.Netns, r.NetnsIfname = fmt.Sprintf("vm%d", n), "eth0"
	}
	return r
}

// testMAC is VM n's MAC.
func testMAC(n int) string { return fmt.Sprintf("52:54:00:00:%02x:%02x", n>>8, n&0xff) }

// vmsText renders ListVMs as comparable text, one interface a line:
// "vm1/net0 52:54:00:00:00:01 vlan 100 qos 0 trust off on pf1 vf 0 (0000:02:10.0) netns vm1".
func (h *harness) vmsText() string {
	h.t.Helper()
	l, err := h.d.ListVMs(context.Background(), "")
	if err != nil {
		h.t.Fatalf("ListVMs: %v", err)
	}
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = vmText(v)
	}
	return lines(out...)
}

// vmText renders one interface (see vmsText).
func vmText(v *vflagpb.VMInterface) string {
	s := fmt.Sprintf("%s/%s %s vlan %d qos %d trust %s on %s vf %d (%s)",
		v.GetVm(), v.GetIface(), v.GetMac(), v.GetVlan(), v.GetQos(), onOff(v.GetTrust()), v.GetPf(), v.GetVf(), v.GetVfPci())
	if v.GetNetns() != "" {
		s += " netns " + v.GetNetns()
	}
	return s
}

// tableText renders ListVMs as storeText renders the store.
func (h *harness) tableText() string {
	h.t.Helper()
	l, err := h.d.ListVMs(context.Background(), "")
	if err != nil {
		h.t.Fatalf("ListVMs: %v", err)
	}
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = fmt.Sprintf("%s/%s %s vlan %d on %s vf %d", v.GetVm(), v.GetIface(), v.GetMac(), v.GetVlan(), v.GetPf(), v.GetVf())
	}
	return lines(out...)
}

// storeText renders the allocations in the store and its pending intents,
// read through a fresh handle when reopen is set (the daemon's store is
// closed first then, so call it last).
func (h *harness) storeText(reopen bool) string {
	h.t.Helper()
	st := h.store
	if reopen {
		h.store.Close()
		var err error
		if st, err = store.Open(h.path, store.Options{}); err != nil {
			h.t.Fatal(err)
		}
		defer st.Close()
	}
	return storeText(h.t, st)
}

// storeText renders a store's allocations, "vm1/net0 52:54:00:00:00:01
// vlan 100 on pf1 vf 0", and its pending intents,
// "pending vm1/net0 pf0 vf 0 -> pf1 vf 0".
func storeText(t testing.TB, st *store.Store) string {
	t.Helper()
	all, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range all {
		out = append(out, fmt.Sprintf("%s %s vlan %d on %s", a.Key(), a.MAC, a.VLAN, a.VF))
	}
	pending, err := st.PendingMoves()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range pending {
		for _, m := range in.Moves {
			out = append(out, fmt.Sprintf("pending %s %s -> %s", m.Key, m.From, m.To))
		}
	}
	return lines(out...)
}

// statusText renders Status: "bond0 active pf1: pf0 down 0/4, pf1 up 2/4".
func (h *harness) statusText() string {
	h.t.Helper()
	r, err := h.d.Status(context.Background())
	if err != nil {
		h.t.Fatalf("Status: %v", err)
	}
	var out []string
	for _, b := range r.GetBonds() {
		active := b.GetActive()
		if active == "" {
			active = "(none)"
		}
		var ports []string
		for _, p := range b.GetPorts() {
			link := "down"
			if p.GetCarrier() {
				link = "up"
			}
			ports = append(ports, fmt.Sprintf("%s %s %d/%d", p.GetName(), link, p.GetVfsUsed(), p.GetVfsTotal()))
		}
		out = append(out, fmt.Sprintf("%s active %s: %s", b.GetName(), active, strings.Join(ports, ", ")))
	}
	return lines(out...)
}

// takeEvents returns the events published since the last take, but for
// announcements (they come from goroutines, in no fixed order; the
// announcer's records tell what was announced): "failover bond0 pf0
// moved 2: carrier-lost: 2 moved, 0 failed".
// nextEvent waits up to d for the next event other than an announcement,
// rendered as takeEvents does; "" when none came.
func (h *harness) nextEvent(t *testing.T, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-h.events:
			if ev.GetKind() == "announce" {
				continue
			}
			s := ev.GetKind() + " " + ev.GetBond()
			if ev.GetKind() == "failover" {
				s += fmt.Sprintf(" moved %d", ev.GetMoved())
			}
			if ev.GetMessage() != "" {
				s += ": " + ev.GetMessage()
			}
			return s
		case <-deadline:
			return ""
		}
	}
}

func (h *harness) takeEvents() string {
	var out []string
	for {
		select {
		case ev := <-h.events:
			if ev.GetKind() == "announce" {
				continue
			}
			var fields []string
			for _, f := range []string{ev.GetKind(), ev.GetBond(), ev.GetPf(), ev.GetVm(), ev.GetMac()} {
				if f != "" {
					fields = append(fields, f)
				}
			}
			s := strings.Join(fields, " ")
			if ev.GetKind() == "failover" {
				s += fmt.Sprintf(" moved %d", ev.GetMoved())
			}
			if ev.GetMessage() != "" {
				s += ": " + ev.GetMessage()
			}
			out = append(out, s)
		default:
			return lines(out...)
		}
	}
}

// metricsText renders the daemon's counters and gauges whose names have
// one of the prefixes, one sample a line, sorted: "vflag_vm_moves_total
// bond=bond0 2". Histograms render their sample count only (durations are
// for benchmarks).
func (h *harness) metricsText(prefixes ...string) string {
	h.t.Helper()
	mfs, err := h.metrics.Gather().Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(mf.GetName(), p) }) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			name, v := mf.GetName(), 0.0
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				name, v = name+"_count", float64(m.GetHistogram().GetSampleCount())
			}
			out = append(out, fmt.Sprintf("%s %s %g", name, strings.Join(labels, ","), v))
		}
	}
	slices.Sort(out)
	return lines(out...)
}

// diff reports got != want with both texts.
func diff(t testing.TB, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got\n%s--- want\n%s", what, got, want)
	}
}

// onOff renders a switch.
func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
