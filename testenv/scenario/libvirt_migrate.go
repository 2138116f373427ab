package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/probe"
)

// LibvirtMigrate is the variant of LibvirtPull's results that is the
// failover guest's live migration, after the pull, to a second
// libvirt-flavour host (LibvirtOptions.MigrateTo).
const LibvirtMigrate = "migrate"

// migrateWait bounds virsh migrate, and then the wait for the guest's VF
// on the destination: TCG inside TCG.
const migrateWait = 5 * time.Minute

// migrateReachable bounds how long the client keeps probing for the guest
// after its VF is back, when the guest has not answered yet.
const migrateReachable = 90 * time.Second

// LibvirtMigration is what the failover guest's migration showed; its
// JSON is the probe report of the client's pings across it plus what
// virsh, vflagd on both hosts and the guest said.
type LibvirtMigration struct {
	probe.Report
	// Guest is the libvirt domain, From and To the hosts.
	Guest string `json:"guest"`
	From  string `json:"from"`
	To    string `json:"to"`
	// Addr is the address the client pings; MAC the guest's.
	Addr string `json:"addr"`
	MAC  string `json:"mac"`
	// Virsh is virsh migrate's output; Seconds how long it ran.
	Virsh   string  `json:"virsh"`
	Seconds float64 `json:"seconds"`
	// VFBackSeconds is how long after virsh returned QEMU on the
	// destination showed the teamed VF in the guest's PCI tree again
	// (query-pci, polled every 500 ms: 0 means at the first look); -1
	// when it did not within the wait (see Note).
	VFBackSeconds float64 `json:"vf_back_seconds"`
	// Note says why the VF did not come back, with what QEMU showed.
	Note string `json:"note,omitempty"`
	// ToActive is the destination bond's active port.
	ToActive string `json:"to_active"`
	// Before is the VF in the source's live XML; After in the
	// destination's, as the migrate hook rewrote it.
	Before []LibvirtNIC `json:"vfs_before"`
	After  []LibvirtNIC `json:"vfs_after"`
	// FromDomains is virsh list --all --name in the source afterwards.
	FromDomains []string `json:"from_domains"`
	// VflagVMsFrom and VflagVMsTo are the guest's lines of vflag vms in
	// each host afterwards.
	VflagVMsFrom []string `json:"vflag_vms_from"`
	VflagVMsTo   []string `json:"vflag_vms_to"`
	// LeaksFrom and LeaksTo are each host's leaks (see leaks).
	LeaksFrom []string `json:"leaks_from"`
	LeaksTo   []string `json:"leaks_to"`
	// VflagdEvents are both vflagds' events naming the guest, host first,
	// relative to the start of virsh migrate.
	VflagdEvents []string `json:"vflagd_events"`
	// GuestAfter is the guest's own view of its network at the end.
	GuestAfter string `json:"guest_after"`

	// Timeline is the probes and marks the report is made of.
	Timeline probe.Timeline `json:"-"`
}

// Summary is the summary of the migration's timeline.
func (m LibvirtMigration) Summary() probe.Summary { return m.Timeline.Summarize() }

// migrateGuest live-migrates the failover guest g from host from to host
// to with virsh, the client pinging it from a few seconds before until it
// has its VF again on to and answers, and reads what both hosts and the
// guest show afterwards. vflagd and the hook run in both hosts.
func migrateGuest(ctx context.Context, tb *testenv.Testbed, g *l2, from, to string, opts LibvirtOptions) (*LibvirtMigration, error) {
	m := &LibvirtMigration{Guest: g.name, From: from, To: to, Addr: g.addr.String(), MAC: g.macs[0].String(), VFBackSeconds: -1}
	before, err := readHost(ctx, tb, from)
	if err != nil {
		return m, err
	}
	m.Before = before.nics[g.name]
	if m.ToActive, _, err = bondPorts(ctx, tb, to); err != nil {
		return m, err
	}
	offsets := map[string]time.Duration{}
	for _, h := range []string{from, to} {
		if offsets[h], err = clockOffset(ctx, tb, h); err != nil {
			return m, err
		}
	}

	fdb, err := probe.FDBWatcher{Netns: tb.FabricNetns(), MACs: g.macs}.Start(ctx)
	if err != nil {
		return m, err
	}
	defer fdb.Stop()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var samples []probe.Sample
	var pg errgroup.Group
	pg.Go(func() error {
		s, err := (&probe.Pinger{Netns: tb.ClientNetns(), Target: g.addr, Interval: opts.Interval, Timeout: 2 * time.Second}).Run(pctx)
		samples = s
		return err
	})
	var t0, t1, back time.Time
	migErr := func() error {
		if err := sleep(ctx, opts.Before); err != nil {
			return err
		}
		t0 = time.Now()
		out, err := tb.MigrateNested(ctx, g.name, from, to, migrateWait)
		t1 = time.Now()
		m.Virsh, m.Seconds = lastLine(out), t1.Sub(t0).Round(100*time.Millisecond).Seconds()
		if err != nil {
			x, _ := tb.Virsh(context.WithoutCancel(ctx), from, "dumpxml", g.name)
			return fmt.Errorf("%w\nthe domain on %s:\n%s", err, from, x)
		}
		if back, m.Note, err = qemuPlugged(ctx, tb, to, g.name, migrateWait); err != nil {
			return err
		}
		if !back.IsZero() {
			m.VFBackSeconds = back.Sub(t1).Round(100 * time.Millisecond).Seconds()
		}
		// The guest may still be silent: its pings came back 0.7 s before
		// the VF in one run and more than 5 s after it in another (TCG in
		// TCG). Probe on until it answers, within a bound; if it does not,
		// the report says so.
		if err := WaitReachable(ctx, tb, g.addr, migrateReachable); err != nil {
			opts.Progress("%s not reachable after the migration: %v", g.name, err)
		}
		return sleep(ctx, opts.Before)
	}()
	stop()
	if err := pg.Wait(); err != nil {
		return m, fmt.Errorf("probe: %w", err)
	}
	if migErr != nil {
		return m, migErr
	}
	if err := fdb.Stop(); err != nil {
		return m, fmt.Errorf("watch FDB: %w", err)
	}

	// What each host and the guest show.
	out, err := tb.Virsh(ctx, from, "list", "--all", "--name")
	if err != nil {
		return m, err
	}
	m.FromDomains = nonEmptyLines(out)
	src, err := readHost(ctx, tb, from)
	if err != nil {
		return m, err
	}
	dst, err := readHost(ctx, tb, to)
	if err != nil {
		return m, err
	}
	m.After = dst.nics[g.name]
	m.VflagVMsFrom, m.VflagVMsTo = src.vmLines(g.name), dst.vmLines(g.name)
	for _, l := range src.leaks {
		m.LeaksFrom = append(m.LeaksFrom, from+": "+l)
	}
	for _, l := range dst.leaks {
		m.LeaksTo = append(m.LeaksTo, to+": "+l)
	}
	// Best effort, and bounded: after a migration the guest's agent read
	// nothing for 30 s to over 5 min (the guest answered pings all along).
	if res, err := tb.NestedExec(ctx, to, g.name, guestViewScript, time.Minute); err == nil {
		m.GuestAfter = strings.TrimSpace(string(res.Stdout))
	} else {
		m.GuestAfter = "unavailable: " + err.Error()
	}

	tl := probe.Timeline{
		Scenario: LibvirtPull, Variant: LibvirtMigrate, Interval: opts.Interval,
		Fault: t0, FaultLabel: fmt.Sprintf("virsh migrate --live %s %s -> %s", g.name, from, to), Samples: samples,
		Marks: []probe.Mark{{Time: t1, Label: "virsh migrate returned"}},
	}
	if !back.IsZero() {
		tl.Marks = append(tl.Marks, probe.Mark{Time: back, Label: "QEMU on " + to + " shows the VF in the guest"})
	}
	tl.FDB = fdb.Events()
	for _, h := range []string{from, to} {
		events, err := readEvents(ctx, tb, h)
		if err != nil {
			return m, err
		}
		for _, ev := range events {
			at := ev.at.Add(-offsets[h])
			if ev.vm != g.name || at.Before(t0.Add(-opts.Before)) {
				continue
			}
			tl.Marks = append(tl.Marks, probe.Mark{Time: at, Label: "vflagd@" + h + " " + ev.text})
			m.VflagdEvents = append(m.VflagdEvents, fmt.Sprintf("%s %+.1f ms %s", h, msSince(t0, at), ev.text))
		}
	}
	slices.SortFunc(tl.Marks, func(a, b probe.Mark) int { return a.Time.Compare(b.Time) })
	m.Timeline = tl
	m.Report = probe.NewReport(tl)
	return m, nil
}

// lastLine is the last line of virsh's output, whose --verbose progress
// is carriage returns.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}

// writeMigration writes the migration's part of the text summary.
func writeMigration(b *strings.Builder, m *LibvirtMigration) {
	s := m.Summary()
	fmt.Fprintf(b, "\nmigration of %s from %s to %s after the pull (virsh migrate --live):\n", m.Guest, m.From, m.To)
	back := "never (see the note)"
	if m.VFBackSeconds >= 0 {
		back = fmt.Sprintf("%.1f s after", m.VFBackSeconds)
	}
	fmt.Fprintf(b, "  virsh ran %.1f s (%s); the guest had its VF again %s\n", m.Seconds, m.Virsh, back)
	fmt.Fprintf(b, "  longest gap %.1f s, %d of %d probes lost\n", s.GapMs/1000, s.Lost, s.Sent)
	for _, n := range m.Before {
		fmt.Fprintf(b, "  before %s: %s\n", m.From, n)
	}
	for _, n := range m.After {
		fmt.Fprintf(b, "  after  %s: %s (%s active: %s)\n", m.To, n, m.To, m.ToActive)
	}
	fmt.Fprintf(b, "  vflag vms on %s: %s; on %s: %s\n", m.From, orWhat(strings.Join(m.VflagVMsFrom, "; "), "nothing of "+m.Guest, "%s"),
		m.To, orWhat(strings.Join(m.VflagVMsTo, "; "), "nothing of "+m.Guest, "%s"))
	fmt.Fprintf(b, "  domains left on %s: %s; leaks: %s\n", m.From, orWhat(strings.Join(m.FromDomains, ", "), "none", "%s"),
		orWhat(strings.Join(append(slices.Clone(m.LeaksFrom), m.LeaksTo...), "; "), "none", "%s"))
	b.WriteString("  vflagd events (ms relative to virsh migrate):\n")
	for _, e := range m.VflagdEvents {
		fmt.Fprintf(b, "    %s\n", e)
	}
	if m.Note != "" {
		fmt.Fprintf(b, "  note: %s\n", m.Note)
	}
}

// qemuPlugged waits until QEMU in host h shows the domain's teamed VF (the
// hostdev interface's alias in the live XML) in the guest's PCI tree:
// QEMU hides it until it plugs it in. plugged is when it was first seen;
// not within wait is no error but a note with what QEMU showed.
func qemuPlugged(ctx context.Context, tb *testenv.Testbed, h, domain string, wait time.Duration) (plugged time.Time, note string, err error) {
	x, err := tb.Virsh(ctx, h, "dumpxml", domain)
	if err != nil {
		return time.Time{}, "", err
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		return time.Time{}, "", fmt.Errorf("domain XML of %s on %s: %w", domain, h, err)
	}
	alias := ""
	if d.Devices != nil {
		for _, i := range d.Devices.Interfaces {
			if i.Source != nil && i.Source.Hostdev != nil && i.Alias != nil {
				alias = i.Alias.Name
			}
		}
	}
	if alias == "" {
		return time.Time{}, fmt.Sprintf("%s on %s has no hostdev interface with an alias in its live XML", domain, h), nil
	}
	deadline := time.Now().Add(wait)
	var last string
	for {
		out, err := tb.Virsh(ctx, h, "qemu-monitor-command", domain, `{"execute":"query-pci"}`)
		if err == nil && pciHasDevice(out, alias) {
			return time.Now(), "", nil
		}
		last = fmt.Sprintf("%.300s (%v)", out, err)
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Sprintf("QEMU on %s did not show %s's VF (%s) in the guest within %v; last query-pci: %s", h, domain, alias, wait, last), nil
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return time.Time{}, "", err
		}
	}
}

// pciHasDevice reports whether a QMP query-pci answer lists a device
// with qdev id id, on any bus.
func pciHasDevice(answer, id string) bool {
	var r struct {
		Return []struct {
			Devices []pciDevice `json:"devices"`
		} `json:"return"`
	}
	if json.Unmarshal([]byte(answer), &r) != nil {
		return false
	}
	for _, b := range r.Return {
		if slices.ContainsFunc(b.Devices, func(d pciDevice) bool { return d.has(id) }) {
			return true
		}
	}
	return false
}

// pciDevice is a device of a query-pci answer; bridges carry the devices
// behind them.
type pciDevice struct {
	QdevID string `json:"qdev_id"`
	Bridge *struct {
		Devices []pciDevice `json:"devices"`
	} `json:"pci_bridge"`
}

func (d pciDevice) has(id string) bool {
	if d.QdevID == id {
		return true
	}
	return d.Bridge != nil && slices.ContainsFunc(d.Bridge.Devices, func(c pciDevice) bool { return c.has(id) })
}
