package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vflag/vflag/announce"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/daemon"
	"github.com/vflag/vflag/vfmgr/sriov"
	"github.com/vflag/vflag/vfmgr/store"
)

// The fakes below stand in for the kernel, the bond, the VM side and the
// switches. Each records what it was asked to do as text (one line per
// mutating call) so that a test compares it with what a user expects, and
// each can be made to fail chosen calls.

var (
	_ daemon.Kernel    = (*fakeKernel)(nil)
	_ daemon.Bonds     = (*fakeBonds)(nil)
	_ daemon.VMSide    = (*fakeVMs)(nil)
	_ daemon.Announcer = (*fakeAnnouncer)(nil)
	_ daemon.Store     = (*flakyStore)(nil)
)

// errInjected is what a fake returns for a call a test made fail.
var errInjected = errors.New("injected failure")

// failures holds the prefixes of the calls that fail.
type failures []string

// match reports whether call is one that fails.
func (f failures) match(call string) bool {
	return slices.ContainsFunc(f, func(p string) bool { return strings.HasPrefix(call, p) })
}

// fakePF is one PF of the fake kernel with its VFs.
type fakePF struct {
	pf  vfmgr.PF
	vfs []vfmgr.VF
}

// fakeKernel is the SR-IOV side of an in-memory kernel: PFs with their
// VFs' administrative settings, as `ip link show PF` would list them.
type fakeKernel struct {
	// mu guards everything below: the daemon calls from its event loop
	// while a test reads.
	mu    sync.Mutex
	pfs   map[string]*fakePF
	calls []string
	fail  failures
	// quiet stops recording calls (benchmarks).
	quiet bool
}

// newFakeKernel returns a kernel without PFs.
func newFakeKernel() *fakeKernel { return &fakeKernel{pfs: map[string]*fakePF{}} }

// addPF adds a PF enslaved to pf.Bond (unless empty) with pf.NumVFs VFs
// without MAC; its PCI address and driver are made up when empty.
func (k *fakeKernel) addPF(pf vfmgr.PF) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pf.PCI == "" {
		pf.PCI = fmt.Sprintf("0000:%02x:00.0", len(k.pfs)+1)
	}
	if pf.Driver == "" {
		pf.Driver = "igb"
	}
	p := &fakePF{pf: pf}
	p.create(pf.NumVFs)
	k.pfs[pf.Name] = p
}

// create makes n VFs without MAC, as writing sriov_numvfs does.
func (p *fakePF) create(n int) {
	p.vfs = nil
	bus := p.pf.PCI[:len("0000:00")]
	for i := range n {
		p.vfs = append(p.vfs, vfmgr.VF{
			PF: p.pf.Name, Index: i, PCI: fmt.Sprintf("%s:%02x.%d", bus, 0x10+i/8, i%8), SpoofChk: true,
		})
	}
	p.pf.NumVFs = n
}

// failOn makes every later call starting with prefix fail ("configure pf1
// vf 1", "reset", "numvfs pf0").
func (k *fakeKernel) failOn(prefix string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = append(k.fail, prefix)
}

// heal makes every call succeed again.
func (k *fakeKernel) heal() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = nil
}

// setCarrier sets a PF's link state as PF reports it.
func (k *fakeKernel) setCarrier(pf string, up bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pfs[pf].pf.Carrier = up
}

// setVF sets a VF's MAC and VLAN behind the daemon's back (what a crashed
// vflagd, a driver default or an operator left).
func (k *fakeKernel) setVF(pf string, idx int, mac string, vlan int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	vf := &k.pfs[pf].vfs[idx]
	vf.MAC, vf.VLAN = nil, vlan
	if mac != "" {
		vf.MAC = mustMAC(mac)
	}
}

// assign binds a VF to vfio-pci, as libvirt does when it passes it to a
// guest.
func (k *fakeKernel) assign(pf string, idx int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pfs[pf].vfs[idx].Driver = "vfio-pci"
}

// call records a mutating call, rendered by text, and says whether it
// fails. k.mu is held.
func (k *fakeKernel) call(text func() string) error {
	if k.quiet && len(k.fail) == 0 {
		return nil
	}
	return record(&k.calls, k.fail, k.quiet, text())
}

// record appends a call to calls unless quiet, and says whether it fails.
func record(calls *[]string, fail failures, quiet bool, text string) error {
	failed := fail.match(text)
	if !quiet {
		if failed {
			text += " (failed)"
		}
		*calls = append(*calls, text)
	}
	if failed {
		return errInjected
	}
	return nil
}

// takeCalls returns the calls recorded since the last take, one a line.
func (k *fakeKernel) takeCalls() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := lines(k.calls...)
	k.calls = nil
	return s
}

// vfsText renders every VF that carries a MAC, as comparable text:
// "pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off".
func (k *fakeKernel) vfsText() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, name := range sortedKeys(k.pfs) {
		for _, v := range k.pfs[name].vfs {
			if len(v.MAC) == 0 {
				continue
			}
			cfg := sriov.VFConfig{MAC: v.MAC, VLAN: v.VLAN, QoS: v.QoS, SpoofChk: v.SpoofChk, Trust: v.Trust}
			out = append(out, fmt.Sprintf("%s vf %d %s", name, v.Index, cfg))
		}
	}
	return lines(out...)
}

// PF implements daemon.Kernel.
func (k *fakeKernel) PF(_ context.Context, name string) (vfmgr.PF, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.pfs[name]
	if !ok {
		return vfmgr.PF{}, fmt.Errorf("PF %s: no such network interface", name)
	}
	return p.pf, nil
}

// VFs implements daemon.Kernel.
func (k *fakeKernel) VFs(_ context.Context, pf string) ([]vfmgr.VF, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.pfs[pf]
	if !ok {
		return nil, fmt.Errorf("VFs of %s: no such network interface", pf)
	}
	out := slices.Clone(p.vfs)
	for i := range out {
		out[i].MAC = slices.Clone(out[i].MAC)
	}
	return out, nil
}

// SetNumVFs implements daemon.Kernel: "numvfs pf0 4".
func (k *fakeKernel) SetNumVFs(_ context.Context, pf string, n int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.call(func() string { return fmt.Sprintf("numvfs %s %d", pf, n) }); err != nil {
		return fmt.Errorf("set sriov_numvfs of %s to %d: %w", pf, n, err)
	}
	p, ok := k.pfs[pf]
	switch {
	case !ok:
		return fmt.Errorf("set sriov_numvfs of %s: no such network interface", pf)
	case n > p.pf.TotalVFs:
		return fmt.Errorf("set sriov_numvfs of %s (%s) to %d: sriov_totalvfs is %d", pf, p.pf.PCI, n, p.pf.TotalVFs)
	case p.pf.NumVFs != 0 && n != 0:
		// sriov_numvfs_store in drivers/pci/iov.c: EBUSY.
		return fmt.Errorf("set sriov_numvfs of %s (%s) to %d: device or resource busy", pf, p.pf.PCI, n)
	}
	p.create(n)
	return nil
}

// ConfigureVF implements daemon.Kernel:
// "configure pf1 vf 0 mac 52:54:00:00:00:01 vlan 100 qos 0 spoofchk on trust off".
func (k *fakeKernel) ConfigureVF(_ context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.call(func() string { return fmt.Sprintf("configure %s vf %d %s", pf, idx, cfg) }); err != nil {
		return fmt.Errorf("configure %s vf %d: %w", pf, idx, err)
	}
	return k.set(pf, idx, cfg)
}

// ResetVF implements daemon.Kernel: "reset pf0 vf 0".
func (k *fakeKernel) ResetVF(_ context.Context, pf string, idx int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.call(func() string { return fmt.Sprintf("reset %s vf %d", pf, idx) }); err != nil {
		return fmt.Errorf("reset %s vf %d: %w", pf, idx, err)
	}
	return k.set(pf, idx, sriov.VFConfig{SpoofChk: true})
}

// set applies cfg to a VF as the PF driver would. k.mu is held.
func (k *fakeKernel) set(pf string, idx int, cfg sriov.VFConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configure %s vf %d: %w", pf, idx, err)
	}
	p, ok := k.pfs[pf]
	if !ok || idx < 0 || idx >= len(p.vfs) {
		return fmt.Errorf("configure %s vf %d: no such VF", pf, idx)
	}
	vf := &p.vfs[idx]
	vf.MAC = slices.Clone(cfg.MAC)
	if len(vf.MAC) > 0 && slices.Equal(vf.MAC, make(net.HardwareAddr, 6)) {
		vf.MAC = nil
	}
	vf.VLAN, vf.QoS, vf.SpoofChk, vf.Trust = cfg.VLAN, cfg.QoS, cfg.SpoofChk, cfg.Trust
	return nil
}

// fakeBonds is the bonds' active ports. SetActive tells onChange, which
// plays the kernel's RTM_NEWLINK about the bond.
type fakeBonds struct {
	// mu guards active and calls.
	mu     sync.Mutex
	active map[string]string
	calls  []string
	// onChange, when set, is called after SetActive changed a bond.
	onChange func(bond string)
}

// Active implements daemon.Bonds.
func (b *fakeBonds) Active(_ context.Context, bond string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.active[bond]
	if !ok {
		return "", fmt.Errorf("bond %s: not a bond", bond)
	}
	return a, nil
}

// SetActive implements daemon.Bonds: "set-active bond0 pf1".
func (b *fakeBonds) SetActive(_ context.Context, bond, pf string) error {
	b.mu.Lock()
	b.calls = append(b.calls, fmt.Sprintf("set-active %s %s", bond, pf))
	b.active[bond] = pf
	notify := b.onChange
	b.mu.Unlock()
	if notify != nil {
		notify(bond)
	}
	return nil
}

// takeCalls returns the calls recorded since the last take, one a line.
func (b *fakeBonds) takeCalls() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := lines(b.calls...)
	b.calls = nil
	return s
}

// get returns a bond's active port.
func (b *fakeBonds) get(bond string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active[bond]
}

// set changes a bond's active port as the kernel would on its own.
func (b *fakeBonds) set(bond, pf string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active[bond] = pf
}

// fakeVMs is the VM side: which VF each VM interface has plugged.
type fakeVMs struct {
	// mu guards everything below.
	mu      sync.Mutex
	calls   []string
	fail    failures
	addrs   map[string][]netip.Addr // by VM
	plugged map[string]vfmgr.VFRef  // by allocation key
	quiet   bool
	// gates hold a VM's Unplug, after it is recorded, until the channel
	// is closed (a guest slow to let go of its VF); entered gets the VM's
	// name when its Unplug starts waiting.
	gates   map[string]chan struct{}
	entered chan string
}

// gate makes the Unplug of each VM wait until its returned channel is
// closed; entered tells when each starts waiting.
func (v *fakeVMs) gate(vms ...string) (entered <-chan string, open map[string]chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gates = map[string]chan struct{}{}
	v.entered = make(chan string, len(vms))
	for _, vm := range vms {
		v.gates[vm] = make(chan struct{})
	}
	return v.entered, v.gates
}

// newFakeVMs returns a VM side where nothing is plugged.
func newFakeVMs() *fakeVMs {
	return &fakeVMs{addrs: map[string][]netip.Addr{}, plugged: map[string]vfmgr.VFRef{}}
}

// failOn makes every later call starting with prefix fail ("plug vm2").
func (v *fakeVMs) failOn(prefix string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fail = append(v.fail, prefix)
}

// heal makes every call succeed again.
func (v *fakeVMs) heal() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fail = nil
}

// setAddrs gives a VM the addresses its guest reports.
func (v *fakeVMs) setAddrs(vm string, addrs ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, a := range addrs {
		v.addrs[vm] = append(v.addrs[vm], netip.MustParseAddr(a))
	}
}

// call records a mutating call, rendered by text, and says whether it
// fails. v.mu is held.
func (v *fakeVMs) call(text func() string) error {
	if v.quiet && len(v.fail) == 0 {
		return nil
	}
	return record(&v.calls, v.fail, v.quiet, text())
}

// takeCalls returns the calls recorded since the last take, one a line.
func (v *fakeVMs) takeCalls() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := lines(v.calls...)
	v.calls = nil
	return s
}

// pluggedText renders what each VM interface holds: "vm1/net0 pf1 vf 0".
func (v *fakeVMs) pluggedText() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, key := range sortedKeys(v.plugged) {
		out = append(out, fmt.Sprintf("%s %s", key, v.plugged[key]))
	}
	return lines(out...)
}

// Plug implements daemon.VMSide: "plug vm1 pf1 vf 0".
func (v *fakeVMs) Plug(_ context.Context, a vfmgr.Allocation, vf vfmgr.VFRef) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.call(func() string { return fmt.Sprintf("plug %s %s", a.VM, vf) }); err != nil {
		return fmt.Errorf("plug %s into VM %s: %w", vf, a.VM, err)
	}
	if held, ok := v.plugged[a.Key()]; ok {
		return fmt.Errorf("plug %s into VM %s: %s holds %s already", vf, a.VM, a.Key(), held)
	}
	v.plugged[a.Key()] = vf
	return nil
}

// Unplug implements daemon.VMSide: "unplug vm1".
func (v *fakeVMs) Unplug(_ context.Context, a vfmgr.Allocation) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.call(func() string { return "unplug " + a.VM }); err != nil {
		return fmt.Errorf("unplug VM %s: %w", a.VM, err)
	}
	if g, ok := v.gates[a.VM]; ok {
		v.mu.Unlock()
		v.entered <- a.VM
		<-g
		v.mu.Lock()
	}
	delete(v.plugged, a.Key())
	return nil
}

// fakeDomains is vflagd's libvirt side: the VM side of fakeVMs, and the
// pool lists vflagd last gave it.
type fakeDomains struct {
	*fakeVMs
	// pools is guarded by fakeVMs.mu.
	pools map[string][]string
}

// SetPools implements daemon.Domains.
func (f *fakeDomains) SetPools(pools map[string][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pools = pools
}

// State implements daemon.Domains.
func (f *fakeDomains) State() string { return "connected to test:///fake" }

// Addrs implements daemon.VMSide.
func (v *fakeVMs) Addrs(_ context.Context, a vfmgr.Allocation) ([]netip.Addr, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.addrs[a.VM]), nil
}

// fakeAnnouncer builds each announcement's frames (announce.Frames) but
// sends nothing; it records what it was asked to announce:
// "announce pf1 52:54:00:00:00:01 vlan 0 addrs 198.18.0.5".
type fakeAnnouncer struct {
	// mu guards lines: the daemon announces from goroutines.
	mu    sync.Mutex
	lines []string
	quiet bool
}

// Announce implements daemon.Announcer; it returns the number of frames.
func (f *fakeAnnouncer) Announce(_ context.Context, ifname string, anns []announce.Announcement) (int, error) {
	n := 0
	var recs []string
	for _, a := range anns {
		frames, err := announce.Frames(a)
		if err != nil {
			return n, err
		}
		n += len(frames)
		if f.quiet {
			continue
		}
		addrs := "none"
		if len(a.Addrs) > 0 {
			s := make([]string, len(a.Addrs))
			for i, ip := range a.Addrs {
				s[i] = ip.String()
			}
			addrs = strings.Join(s, " ")
		}
		recs = append(recs, fmt.Sprintf("announce %s %s vlan %d addrs %s", ifname, a.MAC, a.VLAN, addrs))
	}
	f.mu.Lock()
	f.lines = append(f.lines, recs...)
	f.mu.Unlock()
	return n, nil
}

// take returns the announcements recorded since the last take, sorted
// (PFs announce concurrently), one a line.
func (f *fakeAnnouncer) take() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := slices.Clone(f.lines)
	sort.Strings(s)
	f.lines = nil
	return lines(s...)
}

// flakyStore is the real store whose BeginMoves fails the next failBegin
// times (a full disk).
type flakyStore struct {
	*store.Store
	// failBegin is only used under the daemon's lock.
	failBegin int
}

// BeginMoves implements daemon.Store.
func (s *flakyStore) BeginMoves(id string, moves []store.Move) error {
	if s.failBegin > 0 {
		s.failBegin--
		return fmt.Errorf("begin moves %q: write: no space left on device: %w", id, errInjected)
	}
	return s.Store.BeginMoves(id, moves)
}

// lines joins text lines, each ending in a newline ("" for none).
func lines(s ...string) string {
	if len(s) == 0 {
		return ""
	}
	return strings.Join(s, "\n") + "\n"
}

// sortedKeys returns a map's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// mustMAC parses a MAC or panics (test data).
func mustMAC(s string) net.HardwareAddr {
	mac, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return mac
}

// setBond enslaves a PF to bond ("" releases it).
func (k *fakeKernel) setBond(pf, bond string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pfs[pf].pf.Bond = bond
}

// plug records that a VM interface holds a VF already (what a vflagd
// that crashed left).
func (v *fakeVMs) plug(key string, vf vfmgr.VFRef) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.plugged[key] = vf
}
