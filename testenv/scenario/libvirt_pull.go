package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protojson"
	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/hooks"
	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/probe"
)

// LibvirtPull is the scenario with real libvirt guests: two L2 VMs run by
// libvirtd in a libvirt-flavour KVM host, and a guest-bond baseline beside
// them, are pinged from the client while the cable of the host bond's
// active port is pulled and stays pulled.
const LibvirtPull = "libvirt-pull"

// The variants of LibvirtPull.
const (
	// LibvirtFailover: a VF teamed with a virtio-net standby on a macvtap
	// over bond0 (libvirt <teaming>, the guest's stock net_failover); vflag
	// mode failover.
	LibvirtFailover = "failover"
	// LibvirtHotswap: one VF of the active PF, vflag mode hotswap (domain
	// metadata). The guest brings a hot-plugged NIC with its MAC up, as a
	// distro's udev/netplan match by MAC would.
	LibvirtHotswap = "hotswap"
	// LibvirtGuestBond: the baseline without vflag's help: two VFs, one
	// per PF, bonded active-backup (ARP monitor) by the guest's kernel.
	// It runs in a network namespace of the KVM host, the way make demo's
	// baseline does, not in a third L2 guest: with three TCG-in-TCG guests
	// on two cores the guests stopped answering (runs of 2026-11-21/22),
	// and the baseline measures the guest's bond, which the same kernel
	// runs in either place. Its VFs are outside vflagd's pool.
	LibvirtGuestBond = "guest-bond"
)

// LibvirtVariants are the variants, in the order the results list them.
var LibvirtVariants = []string{LibvirtFailover, LibvirtHotswap, LibvirtGuestBond}

// libvirtPool is how many VFs per PF vflagd manages; the L2 guests use VFs
// 0 and 1 of the active PF, so each PF keeps free VFs. The guest-bond
// baseline has VF libvirtPool of each PF, outside vflagd's pool.
const libvirtPool = 4

// LibvirtHostSpec is the KVM host RunLibvirtPull needs: the libvirt
// flavour (2048 MiB, room for the two L2 guests) with one VF per port more
// than vflagd's pool.
func LibvirtHostSpec(name string) testenv.HostSpec {
	return testenv.HostSpec{Name: name, VFs: libvirtPool + 1, Flavour: testenv.FlavourLibvirt}
}

// LibvirtOptions tune RunLibvirtPull.
type LibvirtOptions struct {
	// Host is the libvirt-flavour host (default the testbed's first).
	Host string
	// Interval is the client's probe interval (default 20 ms: three
	// guests under TCG inside TCG).
	Interval time.Duration
	// Before is how long probes run before the pull (default 5 s).
	Before time.Duration
	// After is how long probes run after the pull (default 75 s).
	After time.Duration
	// GuestMemoryMB is each L2 guest's memory (default 192).
	GuestMemoryMB int
	// Boot bounds the wait for each L2 guest's agent (default 15 min).
	Boot time.Duration
	// MigrateTo, when set, is a second libvirt-flavour host: after the
	// pull the failover guest is live-migrated to it with virsh (see
	// LibvirtMigration).
	MigrateTo string
	// Progress, when set, is told as each phase ends.
	Progress func(format string, args ...any)
}

func (o *LibvirtOptions) defaults(tb *testenv.Testbed) {
	if o.Host == "" {
		o.Host = tb.Hosts()[0]
	}
	if o.Interval == 0 {
		o.Interval = 20 * time.Millisecond
	}
	if o.Before == 0 {
		o.Before = 5 * time.Second
	}
	if o.After == 0 {
		o.After = 75 * time.Second
	}
	if o.GuestMemoryMB == 0 {
		o.GuestMemoryMB = 192
	}
	if o.Boot == 0 {
		o.Boot = 15 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
}

// LibvirtNIC is one VF interface of a domain, as virsh dumpxml shows it.
type LibvirtNIC struct {
	// MAC is the interface's MAC.
	MAC string `json:"mac"`
	// VF is the VF's PCI address in the host.
	VF string `json:"vf"`
	// PFVF names it by PF and index ("pf1 vf 0").
	PFVF string `json:"pf_vf"`
	// Teaming is the <teaming type>, "" without.
	Teaming string `json:"teaming,omitempty"`
	// GuestPCI is the PCI address the guest sees it at.
	GuestPCI string `json:"guest_pci,omitempty"`
}

func (n LibvirtNIC) String() string {
	s := fmt.Sprintf("%s on %s (%s)", n.MAC, n.PFVF, n.VF)
	if n.GuestPCI != "" {
		s += " at guest " + n.GuestPCI
	}
	if n.Teaming != "" {
		s += ", teaming " + n.Teaming
	}
	return s
}

// LibvirtResult is what one guest showed; its JSON is the probe report of
// its timeline plus what libvirt, vflagd and the guest said.
type LibvirtResult struct {
	probe.Report
	// Guest is the libvirt domain.
	Guest string `json:"guest"`
	// Mode is the vflag mode of its VFs.
	Mode string `json:"mode"`
	// Addr is the address the client pings.
	Addr string `json:"addr"`
	// MACs are its interfaces' MACs.
	MACs []string `json:"macs"`
	// Before and After are its VF interfaces in virsh dumpxml before the
	// pull and at the end of the window.
	Before []LibvirtNIC `json:"vfs_before"`
	After  []LibvirtNIC `json:"vfs_after"`
	// VflagVMsAfter are its lines of vflag vms at the end of the window.
	VflagVMsAfter []string `json:"vflag_vms_after"`
	// VflagdEvents are vflagd's events naming it (or the bond), with their
	// time relative to the pull.
	VflagdEvents []string `json:"vflagd_events"`
	// GuestAfter is the guest's own view at the end: NICs with carrier and
	// driver, addresses, the guest bond, the hot-plug stand-in's log.
	GuestAfter string `json:"guest_after"`

	// Timeline is the probes and marks the report is made of.
	Timeline probe.Timeline `json:"-"`
}

// Summary is the summary of the guest's timeline.
func (r LibvirtResult) Summary() probe.Summary { return r.Timeline.Summarize() }

// LibvirtPhase is how long one phase of the run took.
type LibvirtPhase struct {
	// Name says what was done.
	Name string `json:"name"`
	// Seconds is how long it took.
	Seconds float64 `json:"seconds"`
}

// LibvirtRun is the record of one run of LibvirtPull.
type LibvirtRun struct {
	// Host is the KVM host and Pulled the port whose cable was pulled.
	Host, Pulled string
	// VflagdLibvirt reports whether vflagd's configuration accepted the
	// libvirt section (vflagd with its libvirt side).
	VflagdLibvirt bool
	// Phases are the durations of the run's phases, in order.
	Phases []LibvirtPhase
	// HostMemory is `free -m` in the host once the guests were up.
	HostMemory string
	// Events are all of vflagd's events from the pull to the end of the
	// window, with their time relative to the pull.
	Events []string
	// VflagdLog are vflagd's log lines about the failover.
	VflagdLog []string
	// VMsAfter is vflag vms at the end of the window.
	VMsAfter []*vflagpb.VMInterface
	// UsedAfter is the number of VFs vflag status shows in use at the end.
	UsedAfter int
	// Leaks are VFs on vfio-pci that no domain holds, and vflagd records
	// of VFs their domain does not hold; empty when nothing leaked.
	Leaks []string
	// Notes are what went wrong in the setup without stopping the run.
	Notes []string
	// Results are the guests' results, in LibvirtVariants order.
	Results []LibvirtResult
	// Migration is the failover guest's migration after the pull (nil
	// without LibvirtOptions.MigrateTo).
	Migration *LibvirtMigration
}

// Result returns the result of a variant.
func (r *LibvirtRun) Result(variant string) (LibvirtResult, bool) {
	for _, x := range r.Results {
		if x.Variant == variant {
			return x, true
		}
	}
	return LibvirtResult{}, false
}

// l2 is one L2 guest of the scenario.
type l2 struct {
	name    string
	variant string
	mode    string
	addr    netip.Addr
	macs    []net.HardwareAddr
	vfs     []string // VF PCI addresses, as the domain XML names them
	// netns: not an L2 guest but a network namespace in the host holding
	// the VFs (the guest-bond baseline; see RunLibvirtPull).
	netns bool
}

func libvirtMAC(n int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0x00, 0xa0, 0x02, byte(n)}
}

func libvirtAddr(n int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(110 + n)}) }

// libvirtYAML is the libvirt section of vflagd's configuration. Under TCG
// in TCG the guests took 23 to 63 s to let go of a VF (2026-11-22), close
// to the default unplug_timeout of 1m: a move that timed out left the
// failover guest's live XML without its VF once, and the migration that
// followed failed.
const libvirtYAML = "libvirt:\n  enabled: true\n  uri: qemu:///system\n  unplug_timeout: 3m"

// eventsLog is where `vflag --json events` writes in the host.
const eventsLog = "/tmp/libvirt-pull-events.jsonl"

// installHookScript installs vflag-hook where libvirt looks for it (with a
// syslog for its warnings); libvirtd must be restarted to find it.
const installHookScript = `set -e
test -x /usr/bin/vflag-hook || { echo "no /usr/bin/vflag-hook in the image: build it (make build)" >&2; exit 1; }
install -D -m 0755 /usr/bin/vflag-hook /etc/libvirt/hooks/qemu.d/vflag
[ -S /dev/log ] || busybox syslogd -O /tmp/syslog.log
`

// RunLibvirtPull runs the scenario on a libvirt-flavour host (see
// LibvirtHostSpec): vflagd with the hook, two L2 guests booted once, the
// client probing each while the active port's cable is pulled, and what
// vflagd, libvirt and the guests show afterwards. The cable is plugged
// back before it returns. A partial run is returned with the error.
func RunLibvirtPull(ctx context.Context, tb *testenv.Testbed, opts LibvirtOptions) (*LibvirtRun, error) {
	opts.defaults(tb)
	h := opts.Host
	run := &LibvirtRun{Host: h}
	paused := false // opts.MigrateTo, until the migration
	phase := func(name string, began time.Time) {
		p := LibvirtPhase{Name: name, Seconds: time.Since(began).Round(100 * time.Millisecond).Seconds()}
		run.Phases = append(run.Phases, p)
		opts.Progress("%s: %.1f s", p.Name, p.Seconds)
	}

	// 1. vflagd (with its libvirt side when it has one), its event
	// stream, and the hook under a restarted libvirtd.
	began := time.Now()
	active, backup, err := bondPorts(ctx, tb, h)
	if err != nil {
		return run, err
	}
	run.Pulled = h + "-p" + active[2:]
	run.VflagdLibvirt = true
	baseline := &l2{
		name: "vm-guestbond", variant: LibvirtGuestBond, mode: "none", addr: libvirtAddr(3),
		macs: []net.HardwareAddr{libvirtMAC(3)}, netns: true,
	}
	if _, err := tb.MustExec(ctx, h, guestBondScript(vm{name: baseline.name, variant: baseline.variant, mac: baseline.macs[0], addr: baseline.addr},
		active, backup, libvirtPool)); err != nil {
		return run, fmt.Errorf("create the guest-bond baseline: %w", err)
	}
	for _, host := range []string{h, opts.MigrateTo} {
		if host == "" {
			continue
		}
		if err := startVflag(ctx, tb, host); err != nil {
			return run, err
		}
	}
	if opts.MigrateTo != "" {
		// The migration's destination sleeps until the migration: idle
		// under TCG it still took about a sixth of a core (1 min 40 s of
		// CPU in 10 min, 2026-11-22), which the L2 guests' boots need.
		if err := tb.Pause(ctx, opts.MigrateTo); err != nil {
			return run, fmt.Errorf("pause %s until the migration: %w", opts.MigrateTo, err)
		}
		defer func() {
			if paused {
				_ = tb.Resume(context.WithoutCancel(ctx), opts.MigrateTo) // a failed run leaves it usable
			}
		}()
		paused = true
	}
	phase("vflagd, hook, libvirtd restart", began)

	// 2. The L2 guests, each defined, started and booted in turn (each
	// boot is a phase of its own).
	vfs, err := hostVFs(ctx, tb, h)
	if err != nil {
		return run, err
	}
	vfOf := func(pf string, idx int) string {
		for pci, v := range vfs {
			if v.pf == pf && v.idx == idx {
				return pci
			}
		}
		return ""
	}
	guests := []*l2{
		{
			name: "vm-failover", variant: LibvirtFailover, mode: "failover", addr: libvirtAddr(1),
			macs: []net.HardwareAddr{libvirtMAC(1)}, vfs: []string{vfOf(active, 0)},
		},
		{
			name: "vm-hotswap", variant: LibvirtHotswap, mode: "hotswap", addr: libvirtAddr(2),
			macs: []net.HardwareAddr{libvirtMAC(2)}, vfs: []string{vfOf(active, 1)},
		},
	}
	baseline.vfs = []string{vfOf(active, libvirtPool), vfOf(backup, libvirtPool)}
	// One guest at a time: an igbvf probe in an L2 guest gets its MAC from
	// the L1's igb PF through the mailbox with a deadline of about a second
	// of guest time, and with guests booting at once the L1 answered too
	// late ("PF still in reset state"): the VF then has a random MAC.
	for _, g := range guests {
		def, err := g.domain(opts.GuestMemoryMB)
		if err != nil {
			return run, err
		}
		if err := tb.DefineNested(ctx, h, def); err != nil {
			return run, err
		}
		t0 := time.Now()
		if _, err := tb.Virsh(ctx, h, "start", g.name); err != nil {
			return run, fmt.Errorf("start %s: %w", g.name, err)
		}
		bctx, bcancel := context.WithTimeout(ctx, opts.Boot)
		err = tb.WaitNested(bctx, h, g.name)
		bcancel()
		if err != nil {
			console, _ := tb.MustExec(ctx, h, "tail -c 2000 "+testenv.NestedConsoleLog(g.name))
			return run, fmt.Errorf("%w\nconsole of %s:\n%s", err, g.name, console)
		}
		phase(g.name+" started and booted (agent answers)", t0)
	}
	if out, err := tb.MustExec(ctx, h, "free -m"); err == nil {
		run.HostMemory = strings.TrimSpace(out)
	}

	// 3. Each guest configures its network as its OS would.
	began = time.Now()
	guests = append(guests, baseline)
	for _, g := range guests {
		note, err := g.configure(ctx, tb, h)
		if err != nil {
			return run, err
		}
		if note != "" {
			opts.Progress("%s", note)
			run.Notes = append(run.Notes, note)
		}
	}
	for _, g := range guests {
		if err := WaitReachable(ctx, tb, g.addr, 2*time.Minute); err != nil {
			out, _ := g.view(ctx, tb, h)
			return run, fmt.Errorf("%s (%s) before the pull: %w\n%s", g.name, g.addr, err, out)
		}
	}
	phase("guest networks configured, all reachable", began)

	results := make([]LibvirtResult, len(guests))
	for i, g := range guests {
		results[i] = LibvirtResult{Guest: g.name, Mode: g.mode, Addr: g.addr.String()}
		results[i].Variant = g.variant
		for _, m := range g.macs {
			results[i].MACs = append(results[i].MACs, m.String())
		}
		if g.netns {
			results[i].Before = netnsVFs(g, vfs)
			continue
		}
		x, err := tb.Virsh(ctx, h, "dumpxml", g.name)
		if err != nil {
			return run, err
		}
		if results[i].Before, err = domainVFs(x, vfs); err != nil {
			return run, fmt.Errorf("%s: %w", g.name, err)
		}
	}
	offset, err := clockOffset(ctx, tb, h)
	if err != nil {
		return run, err
	}

	// 4. Probes, the pull, the window.
	began = time.Now()
	var macs []net.HardwareAddr
	for _, g := range guests {
		macs = append(macs, g.macs...)
	}
	fdb, err := probe.FDBWatcher{Netns: tb.FabricNetns(), MACs: macs}.Start(ctx)
	if err != nil {
		return run, err
	}
	defer fdb.Stop()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	samples := make([][]probe.Sample, len(guests))
	var g errgroup.Group
	for i, gu := range guests {
		g.Go(func() error {
			s, err := (&probe.Pinger{Netns: tb.ClientNetns(), Target: gu.addr, Interval: opts.Interval, Timeout: 2 * time.Second}).Run(pctx)
			samples[i] = s
			return err
		})
	}
	var fault time.Time
	pullErr := func() error {
		if err := sleep(ctx, opts.Before); err != nil {
			return err
		}
		var err error
		if fault, err = tb.Pull(ctx, run.Pulled, testenv.Cable); err != nil {
			return err
		}
		return sleep(ctx, opts.After)
	}()
	stop()
	if err := g.Wait(); err != nil {
		return run, fmt.Errorf("probe: %w", err)
	}
	if pullErr != nil {
		return run, pullErr
	}
	if err := fdb.Stop(); err != nil {
		return run, fmt.Errorf("watch FDB: %w", err)
	}
	phase(fmt.Sprintf("probes %v before and %v after the pull", opts.Before, opts.After), began)

	// 5. What vflagd, libvirt and the guests show, cable still out.
	began = time.Now()
	events, err := readEvents(ctx, tb, h)
	if err != nil {
		return run, err
	}
	if out, err := tb.MustExec(ctx, h, `grep -E 'failover|unplaceable|cannot be moved|hotswap|re-hom|plug|detach|attach|libvirt|domain|moved|announce' /tmp/vflagd.log | tail -n 60; true`); err == nil {
		run.VflagdLog = nonEmptyLines(out)
	}
	if run.UsedAfter, err = usedVFs(ctx, tb, h); err != nil {
		return run, err
	}
	after, err := readHost(ctx, tb, h)
	if err != nil {
		return run, err
	}
	run.VMsAfter, run.Leaks = after.vms, after.leaks
	label := "pull " + run.Pulled + " (kept out)"
	for i, gu := range guests {
		r := &results[i]
		if gu.netns {
			r.After = netnsVFs(gu, after.vfs)
		} else {
			r.After = after.nics[gu.name]
		}
		r.VflagVMsAfter = after.vmLines(gu.name)
		if out, err := gu.view(ctx, tb, h); err == nil {
			r.GuestAfter = strings.TrimSpace(out)
		} else {
			r.GuestAfter = "unavailable: " + err.Error()
		}
		tl := probe.Timeline{
			Scenario: LibvirtPull, Variant: gu.variant, Interval: opts.Interval,
			Fault: fault, FaultLabel: label, Samples: samples[i],
		}
		for _, e := range fdb.Events() {
			if slices.ContainsFunc(gu.macs, func(m net.HardwareAddr) bool { return strings.EqualFold(e.MAC, m.String()) }) {
				tl.FDB = append(tl.FDB, e)
			}
		}
		for _, ev := range events {
			if ev.about(gu) {
				at := ev.at.Add(-offset)
				tl.Marks = append(tl.Marks, probe.Mark{Time: at, Label: "vflagd " + ev.text})
				r.VflagdEvents = append(r.VflagdEvents, fmt.Sprintf("%+.1f ms %s", msSince(fault, at), ev.text))
			}
		}
		r.Timeline = tl
		r.Report = probe.NewReport(tl)
		r.Guest, r.Variant = gu.name, gu.variant
	}
	for _, ev := range events {
		if at := ev.at.Add(-offset); !at.Before(fault.Add(-opts.Before)) {
			run.Events = append(run.Events, fmt.Sprintf("%+.1f ms %s", msSince(fault, at), ev.text))
		}
	}
	run.Results = results
	phase("state after the pull read", began)

	if _, err := tb.Plug(ctx, run.Pulled); err != nil {
		return run, err
	}

	// 6. The failover guest migrates to the second host.
	if opts.MigrateTo != "" {
		began = time.Now()
		if err := tb.Resume(ctx, opts.MigrateTo); err != nil {
			return run, fmt.Errorf("resume %s for the migration: %w", opts.MigrateTo, err)
		}
		paused = false
		run.Migration, err = migrateGuest(ctx, tb, guests[0], h, opts.MigrateTo, opts)
		if err != nil {
			return run, err
		}
		phase("failover guest migrated to "+opts.MigrateTo+", state read", began)
	}
	return run, nil
}

// startVflag starts vflagd (with its libvirt side) and its event stream in
// a host, and installs the hook under a restarted libvirtd.
func startVflag(ctx context.Context, tb *testenv.Testbed, h string) error {
	if _, err := tb.MustExec(ctx, h, StartVflagdScript(libvirtPool, "", libvirtYAML)); err != nil {
		return fmt.Errorf("start vflagd on %s: %w", h, err)
	}
	if _, err := tb.MustExec(ctx, h, "(setsid vflag --json events > "+eventsLog+" 2>&1 < /dev/null &)"); err != nil {
		return fmt.Errorf("start vflag events on %s: %w", h, err)
	}
	if _, err := tb.MustExec(ctx, h, installHookScript); err != nil {
		return fmt.Errorf("install the hook on %s: %w", h, err)
	}
	return tb.RestartLibvirtd(ctx, h)
}

// domain renders the guest's domain.
func (g *l2) domain(memoryMB int) (testenv.NestedGuest, error) {
	d := testenv.NestedGuest{Name: g.name, MemoryMB: memoryMB}
	for _, v := range g.vfs {
		if v == "" {
			return d, fmt.Errorf("%s: a VF it needs does not exist in the host (VFs per port < %d?)", g.name, libvirtPool)
		}
	}
	var err error
	switch g.variant {
	case LibvirtFailover:
		// The mode comes from <teaming>, as the hook's contract says;
		// metadata without a mode marks the VF as vflag's for the
		// migrate hook, which must not trust an address of another host.
		d.Devices, err = testenv.TeamedInterfacesXML(g.vfs[0], g.macs[0].String(), "bond0")
		d.Metadata = vflagMetadata("", g.macs...)
	case LibvirtHotswap:
		d.Devices, err = testenv.HostdevInterfaceXML(g.vfs[0], g.macs[0].String(), 0)
		d.Metadata = vflagMetadata(g.mode, g.macs...)
	}
	return d, err
}

// vflagMetadata is the domain metadata marking each MAC as vflag's, with a
// vflag mode unless mode is "".
func vflagMetadata(mode string, macs ...net.HardwareAddr) string {
	var b strings.Builder
	b.WriteString(`    <vflag:vflag xmlns:vflag="` + hooks.Namespace + `">` + "\n")
	for _, m := range macs {
		attr := ""
		if mode != "" {
			attr = fmt.Sprintf(" mode=%q", mode)
		}
		fmt.Fprintf(&b, "      <vflag:interface mac=%q%s bond=\"bond0\"/>\n", m.String(), attr)
	}
	b.WriteString("    </vflag:vflag>")
	return b.String()
}

// hotplugLoop is the stand-in, in the hotswap guest, for what a distro
// does when a NIC is hot-plugged (udev, then netplan/systemd-networkd or
// NetworkManager with a match on the MAC): every 200 ms, any NIC with the
// guest's MAC that is down is brought up and given the guest's address.
// It uses shell builtins only between sleeps (the guest is TCG in TCG).
const hotplugLoop = `while :; do
	for d in /sys/class/net/*; do
		read a < $d/address || continue
		[ "$a" = %[1]s ] || continue
		read f < $d/flags
		if [ $((f & 1)) -eq 0 ]; then
			nic=${d##*/}
			ip link set $nic up
			ip addr add %[2]s/24 dev $nic
			read up idle < /proc/uptime
			echo "$up: configured $nic (%[1]s) with %[2]s/24"
		fi
	done
	sleep 0.2
done`

// configure sets up the guest's network the way its OS would. A teamed VF
// that QEMU did not plug in is no error but a note: the run goes on and
// shows what follows.
func (g *l2) configure(ctx context.Context, tb *testenv.Testbed, h string) (note string, err error) {
	if g.netns {
		return "", nil
	}
	var script string
	switch g.variant {
	case LibvirtFailover:
		// net_failover's master is the NIC with the MAC that has lower
		// links (the virtio standby, and the VF once QEMU plugs it in).
		script = fmt.Sprintf(`set -e
m=""
for d in /sys/class/net/*; do
	[ "$(cat $d/address)" = %[1]s ] && ls -d $d/lower_* >/dev/null 2>&1 && m=${d##*/}
done
[ -n "$m" ] || { echo "no net_failover master with MAC %[1]s:"; ip link; exit 1; } >&2
ip addr add %[2]s/24 dev $m
ip link set $m up
`, g.macs[0], g.addr)
	case LibvirtHotswap:
		loop := fmt.Sprintf(hotplugLoop, g.macs[0], g.addr)
		script = "cat > /tmp/hotplug.sh <<'VFLAG_EOF'\n" + loop + "\nVFLAG_EOF\n(setsid sh /tmp/hotplug.sh > /tmp/hotplug.log 2>&1 < /dev/null &)\n"
	}
	if _, err := tb.NestedMustExec(ctx, h, g.name, script); err != nil {
		return "", fmt.Errorf("configure the network of %s: %w", g.name, err)
	}
	if g.variant != LibvirtFailover {
		return "", nil
	}
	// The measurement starts with traffic on the VF: wait until QEMU has
	// plugged it in (once virtio_net accepted the standby feature).
	return g.waitTeamedVF(ctx, tb, h, 3*time.Minute)
}

// waitTeamedVF waits until the failover guest has its VF (igbvf bound to a
// NIC with its MAC): QEMU plugs the teamed VF in once the guest's
// virtio_net has accepted the standby feature. Not within wait is no
// error but a note carrying what the guest and QEMU show.
func (g *l2) waitTeamedVF(ctx context.Context, tb *testenv.Testbed, h string, wait time.Duration) (note string, err error) {
	deadline := time.Now().Add(wait)
	for {
		out, err := tb.NestedMustExec(ctx, h, g.name, fmt.Sprintf(`for d in /sys/class/net/*; do
	[ "$(cat $d/address)" = %s ] && [ -e $d/device/driver ] && basename $(readlink $d/device/driver)
done; true`, g.macs[0]))
		if err == nil && strings.Contains(out, "igbvf") {
			return "", nil
		}
		if time.Now().After(deadline) {
			dmesg, _ := tb.NestedMustExec(ctx, h, g.name, "dmesg | grep -iE 'pci|failover|virtio|igbvf' | tail -n 25")
			qemu, _ := tb.MustExec(ctx, h, "tail -n 5 /var/log/libvirt/qemu/"+g.name+".log; virsh -c qemu:///system qemu-monitor-command "+g.name+" --hmp 'info pci' | grep -iE 'bus|ethernet|id \"' | head -n 30")
			return fmt.Sprintf("%s on %s: QEMU did not plug the teamed VF in within %v: NICs with MAC %s have drivers %q (last check: %v)\nguest dmesg:\n%s\nQEMU:\n%s",
				g.name, h, wait, g.macs[0], out, err, dmesg, qemu), nil
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			return "", err
		}
	}
}

// guestViewScript prints a guest's view of its network.
const guestViewScript = `for d in /sys/class/net/*; do
	n=${d##*/}; [ $n = lo ] && continue
	drv=-; [ -e $d/device/driver ] && drv=$(basename $(readlink $d/device/driver))
	low=""; for l in $d/lower_*; do [ -e $l ] && low="$low ${l##*/lower_}"; done
	echo "$n $(cat $d/address) carrier=$(cat $d/carrier 2>/dev/null) driver=$drv${low:+ lowers:$low}"
done
ip -4 -o addr | grep -v ' lo '
if [ -e /proc/net/bonding/bond0 ]; then grep -E 'Currently Active|^Slave Interface|MII Status|Link Failure' /proc/net/bonding/bond0; fi
[ -e /tmp/hotplug.log ] && { echo "hotplug stand-in:"; cat /tmp/hotplug.log; }
[ -s /tmp/reprobe.log ] && { echo "re-probes:"; cat /tmp/reprobe.log; }
true`

// view prints what the guest sees of its network: guestViewScript in the
// L2 guest, or in the baseline's namespace.
func (g *l2) view(ctx context.Context, tb *testenv.Testbed, h string) (string, error) {
	if g.netns {
		return tb.MustExec(ctx, h, "ip netns exec "+g.name+" sh <<'VFLAG_EOF'\n"+guestViewScript+"\nVFLAG_EOF")
	}
	return tb.NestedMustExec(ctx, h, g.name, guestViewScript)
}

// netnsVFs lists the baseline's VFs as the host has them.
func netnsVFs(g *l2, vfs map[string]hostVF) []LibvirtNIC {
	var out []LibvirtNIC
	for _, pci := range g.vfs {
		out = append(out, LibvirtNIC{MAC: g.macs[0].String(), VF: pci, PFVF: vfs[pci].String()})
	}
	return out
}

// hostVF is one VF of the host.
type hostVF struct {
	pf     string
	idx    int
	driver string
}

func (v hostVF) String() string { return fmt.Sprintf("%s vf %d", v.pf, v.idx) }

// hostVFs lists the VFs of pf0 and pf1 by PCI address.
func hostVFs(ctx context.Context, tb *testenv.Testbed, h string) (map[string]hostVF, error) {
	out, err := tb.MustExec(ctx, h, `for p in pf0 pf1; do
	for v in /sys/class/net/$p/device/virtfn*; do
		a=$(basename $(readlink $v))
		drv=-; [ -e /sys/bus/pci/devices/$a/driver ] && drv=$(basename $(readlink /sys/bus/pci/devices/$a/driver))
		echo "$p ${v##*virtfn} $a $drv"
	done
done`)
	if err != nil {
		return nil, fmt.Errorf("list the VFs of %s: %w", h, err)
	}
	vfs := map[string]hostVF{}
	for _, l := range nonEmptyLines(out) {
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("VF list of %s: unexpected line %q", h, l)
		}
		idx, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("VF list of %s: line %q: %w", h, l, err)
		}
		vfs[f[2]] = hostVF{pf: f[0], idx: idx, driver: f[3]}
	}
	return vfs, nil
}

// bondPorts returns bond0's active and backup ports.
func bondPorts(ctx context.Context, tb *testenv.Testbed, h string) (active, backup string, err error) {
	out, err := tb.MustExec(ctx, h, "cat /sys/class/net/bond0/bonding/active_slave")
	if err != nil {
		return "", "", err
	}
	active = strings.TrimSpace(out)
	if active != "pf0" && active != "pf1" {
		return "", "", fmt.Errorf("%s: bond0 has no active port (%q)", h, active)
	}
	return active, map[string]string{"pf0": "pf1", "pf1": "pf0"}[active], nil
}

// domainVFs returns the VF interfaces of a domain XML.
func domainVFs(x string, vfs map[string]hostVF) ([]LibvirtNIC, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		return nil, fmt.Errorf("parse domain XML: %w", err)
	}
	if d.Devices == nil {
		return nil, nil
	}
	var out []LibvirtNIC
	for _, i := range d.Devices.Interfaces {
		if i.Source == nil || i.Source.Hostdev == nil || i.Source.Hostdev.PCI == nil {
			continue
		}
		n := LibvirtNIC{VF: pciString(i.Source.Hostdev.PCI.Address)}
		if v, ok := vfs[n.VF]; ok {
			n.PFVF = v.String()
		} else {
			n.PFVF = "not a VF of pf0/pf1"
		}
		if i.MAC != nil {
			n.MAC = i.MAC.Address
		}
		if i.Teaming != nil {
			n.Teaming = i.Teaming.Type
		}
		if i.Address != nil {
			n.GuestPCI = pciString(i.Address.PCI)
		}
		out = append(out, n)
	}
	return out, nil
}

func pciString(a *libvirtxml.DomainAddressPCI) string {
	if a == nil || a.Domain == nil || a.Bus == nil || a.Slot == nil || a.Function == nil {
		return ""
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", *a.Domain, *a.Bus, *a.Slot, *a.Function)
}

// hostView is what a host shows of its VFs: the VFs, vflagd's table, the
// VF interfaces of each running domain, and the leaks among them.
type hostView struct {
	vfs   map[string]hostVF
	vms   []*vflagpb.VMInterface
	nics  map[string][]LibvirtNIC // by running domain
	leaks []string
}

// readHost reads host h's hostView.
func readHost(ctx context.Context, tb *testenv.Testbed, h string) (hostView, error) {
	var v hostView
	var err error
	if v.vms, err = vflagVMs(ctx, tb, h); err != nil {
		return v, err
	}
	if v.vfs, err = hostVFs(ctx, tb, h); err != nil {
		return v, err
	}
	out, err := tb.Virsh(ctx, h, "list", "--name")
	if err != nil {
		return v, err
	}
	v.nics = map[string][]LibvirtNIC{}
	held := map[string]string{} // VF PCI -> domain
	for _, d := range nonEmptyLines(out) {
		x, err := tb.Virsh(ctx, h, "dumpxml", d)
		if err != nil {
			return v, err
		}
		nics, err := domainVFs(x, v.vfs)
		if err != nil {
			return v, fmt.Errorf("%s on %s: %w", d, h, err)
		}
		v.nics[d] = nics
		for _, n := range nics {
			held[n.VF] = d
		}
	}
	v.leaks = leaks(v.vfs, held, v.vms)
	return v, nil
}

// vmLines are the lines of vflag vms about guest.
func (v hostView) vmLines(guest string) []string {
	var out []string
	for _, m := range v.vms {
		if m.GetVm() == guest {
			out = append(out, vmLine(m))
		}
	}
	return out
}

// leaks returns the VFs on vfio-pci that no domain holds, and vflagd's
// records of VFs their domain does not hold.
func leaks(vfs map[string]hostVF, held map[string]string, vms []*vflagpb.VMInterface) []string {
	var out []string
	for pci, v := range vfs {
		if v.driver == "vfio-pci" && held[pci] == "" {
			out = append(out, fmt.Sprintf("VF %s (%s) is on vfio-pci but no domain holds it", pci, v))
		}
	}
	for _, m := range vms {
		if held[m.GetVfPci()] != m.GetVm() {
			out = append(out, fmt.Sprintf("vflag vms lists %s on %s, which %s", m.GetVm(), m.GetVfPci(),
				orWhat(held[m.GetVfPci()], "no domain holds", "domain %s holds")))
		}
	}
	slices.Sort(out)
	return out
}

func orWhat(s, none, format string) string {
	if s == "" {
		return none
	}
	return fmt.Sprintf(format, s)
}

// vflagVMs is vflag vms in the host.
func vflagVMs(ctx context.Context, tb *testenv.Testbed, h string) ([]*vflagpb.VMInterface, error) {
	out, err := tb.MustExec(ctx, h, "vflag --json vms")
	if err != nil {
		return nil, err
	}
	var r vflagpb.ListVMsResponse
	if err := protojson.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("vflag --json vms on %s: %w", h, err)
	}
	return r.GetInterfaces(), nil
}

// usedVFs is the number of VFs vflag status shows in use.
func usedVFs(ctx context.Context, tb *testenv.Testbed, h string) (int, error) {
	out, err := tb.MustExec(ctx, h, "vflag --json status")
	if err != nil {
		return 0, err
	}
	var r vflagpb.StatusResponse
	if err := protojson.Unmarshal([]byte(out), &r); err != nil {
		return 0, fmt.Errorf("vflag --json status on %s: %w", h, err)
	}
	n := 0
	for _, b := range r.GetBonds() {
		for _, p := range b.GetPorts() {
			n += int(p.GetVfsUsed())
		}
	}
	return n, nil
}

func vmLine(v *vflagpb.VMInterface) string {
	return fmt.Sprintf("%s %s on %s vf %d (%s) mode %s", v.GetVm(), v.GetMac(), v.GetPf(), v.GetVf(), v.GetVfPci(), orWhat(v.GetMode(), "(none)", "%s"))
}

// vflagdEvent is one event of vflag events.
type vflagdEvent struct {
	at   time.Time // the host's clock
	vm   string
	mac  string
	text string
}

// about reports whether the event names the guest, or none in particular
// (a bond's failover).
func (e vflagdEvent) about(g *l2) bool {
	if e.vm == "" && e.mac == "" {
		return true
	}
	if e.vm == g.name {
		return true
	}
	return slices.ContainsFunc(g.macs, func(m net.HardwareAddr) bool { return strings.EqualFold(e.mac, m.String()) })
}

// readEvents reads what `vflag --json events` wrote in the host, in time
// order.
func readEvents(ctx context.Context, tb *testenv.Testbed, h string) ([]vflagdEvent, error) {
	out, err := tb.MustExec(ctx, h, "cat "+eventsLog)
	if err != nil {
		return nil, err
	}
	var evs []vflagdEvent
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var ev vflagpb.Event
		if protojson.Unmarshal(sc.Bytes(), &ev) != nil {
			continue // not an event (vflag's own messages)
		}
		evs = append(evs, vflagdEvent{at: time.UnixMilli(ev.GetAtUnixMs()), vm: ev.GetVm(), mac: ev.GetMac(), text: ev.Summary()})
	}
	// The stream is in the order vflagd sent: a failover's event comes when
	// it is over, after the announcements it made along the way.
	slices.SortStableFunc(evs, func(a, b vflagdEvent) int { return a.at.Compare(b.at) })
	return evs, sc.Err()
}

// clockOffset estimates how far the host's clock is ahead of this one, from
// the quickest of a few `date` round trips.
func clockOffset(ctx context.Context, tb *testenv.Testbed, h string) (time.Duration, error) {
	best, offset := time.Duration(-1), time.Duration(0)
	for range 3 {
		t0 := time.Now()
		out, err := tb.MustExec(ctx, h, "date +%s%N")
		t1 := time.Now()
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("clock of %s: %q: %w", h, out, err)
		}
		if rtt := t1.Sub(t0); best < 0 || rtt < best {
			best = rtt
			offset = time.Unix(0, ns).Sub(t0.Add(rtt / 2))
		}
	}
	return offset, nil
}

func msSince(t0, t time.Time) float64 { return float64(t.Sub(t0).Microseconds()) / 1000 }

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// WriteLibvirtResults writes each guest's result as
// libvirt-pull-<variant>.json and the text summary as libvirt-pull.txt
// under dir, returning the paths.
func WriteLibvirtResults(dir string, run *LibvirtRun) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	var paths []string
	for _, r := range run.Results {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("results of %s: %w", r.Guest, err)
		}
		p := filepath.Join(dir, LibvirtPull+"-"+r.Variant+".json")
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("results: %w", err)
		}
		paths = append(paths, p)
	}
	if m := run.Migration; m != nil {
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("results of the migration: %w", err)
		}
		p := filepath.Join(dir, LibvirtPull+"-"+LibvirtMigrate+".json")
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("results: %w", err)
		}
		paths = append(paths, p)
	}
	var text strings.Builder
	if err := WriteLibvirtText(&text, run); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, LibvirtPull+".txt")
	if err := os.WriteFile(p, []byte(text.String()), 0o644); err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	return append(paths, p), nil
}

// WriteLibvirtText writes the run's summary: one line per guest, what
// vflagd did and where each guest's VFs are, the phases, and each guest's
// timeline as probe.WriteText renders it.
func WriteLibvirtText(w io.Writer, run *LibvirtRun) error {
	var b strings.Builder
	fmt.Fprintf(&b, "libvirt L2 guests on %s; cable of %s pulled and kept out; vflagd libvirt side: %s\n\n",
		run.Host, run.Pulled, map[bool]string{true: "configured", false: "not in this vflagd (config has no libvirt section)"}[run.VflagdLibvirt])
	for _, r := range run.Results {
		s := r.Summary()
		rec := "NOT recovered"
		if s.Recovered {
			rec = fmt.Sprintf("recovered %6.1f s after the pull", s.RecoveryMs/1000)
		}
		fmt.Fprintf(&b, "%-10s %-12s mode %-8s longest gap %8.1f s, %5d of %5d probes lost, %s\n",
			r.Variant, r.Guest, r.Mode, s.GapMs/1000, s.Lost, s.Sent, rec)
	}
	b.WriteString("\nVFs in virsh dumpxml, before the pull and at the end:\n")
	for _, r := range run.Results {
		for _, n := range r.Before {
			fmt.Fprintf(&b, "  %-12s before %s\n", r.Guest, n)
		}
		for _, n := range r.After {
			fmt.Fprintf(&b, "  %-12s after  %s\n", r.Guest, n)
		}
		if len(r.After) == 0 {
			fmt.Fprintf(&b, "  %-12s after  no VF\n", r.Guest)
		}
	}
	b.WriteString("\nvflag vms at the end:\n")
	for _, v := range run.VMsAfter {
		fmt.Fprintf(&b, "  %s\n", vmLine(v))
	}
	fmt.Fprintf(&b, "VFs in use (vflag status): %d; leaks: %s\n", run.UsedAfter, orWhat(strings.Join(run.Leaks, "; "), "none", "%s"))
	b.WriteString("\nvflagd events (ms relative to the pull):\n")
	for _, e := range run.Events {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	if len(run.Events) == 0 {
		b.WriteString("  none\n")
	}
	for _, n := range run.Notes {
		fmt.Fprintf(&b, "\nnote: %s\n", n)
	}
	if m := run.Migration; m != nil {
		writeMigration(&b, m)
	}
	b.WriteString("\nphases:\n")
	for _, p := range run.Phases {
		fmt.Fprintf(&b, "  %7.1f s  %s\n", p.Seconds, p.Name)
	}
	b.WriteString("\n")
	var tls []probe.Timeline
	for _, r := range run.Results {
		tls = append(tls, r.Timeline)
	}
	if run.Migration != nil {
		tls = append(tls, run.Migration.Timeline)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write libvirt-pull summary: %w", err)
	}
	return probe.WriteText(w, tls)
}

// DemoLibvirt boots a testbed with two libvirt-flavour hosts, runs
// LibvirtPull on the first with the failover guest migrating to the
// second afterwards, prints the summary and writes the results to
// resultsDir.
func DemoLibvirt(ctx context.Context, cfg testenv.Config, resultsDir string, out io.Writer) (err error) {
	tb, boot, err := bootTestbed(ctx, cfg, LibvirtHostSpec("kvm1"), LibvirtHostSpec("kvm2"))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := tb.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	fmt.Fprintf(out, "\ntestbed up: kvm1 and kvm2 (libvirt flavour) booted and provisioned in %.1f s\n", boot.Seconds())
	t1 := time.Now()
	run, err := RunLibvirtPull(ctx, tb, LibvirtOptions{MigrateTo: "kvm2", Progress: func(format string, args ...any) {
		fmt.Fprintf(out, "  "+format+"\n", args...)
	}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "scenario %s ran in %.1f s\n\n", LibvirtPull, time.Since(t1).Seconds())
	if err := WriteLibvirtText(out, run); err != nil {
		return err
	}
	paths, err := WriteLibvirtResults(resultsDir, run)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	for _, p := range paths {
		fmt.Fprintln(out, "wrote", p)
	}
	return nil
}
