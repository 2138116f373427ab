package hooks_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/hooks"
	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/scenario"
)

// TestLibvirtLifecycle runs VMs that take their VF from the vflag-bond0
// pool network (<interface type='network'>) through the lifecycles a virsh
// user goes through, under a real libvirtd 11.3 with vflagd and the hook,
// vflagd keeping the pool listing the free VFs of the active PF: start (a
// VF of the active PF, adopted, its MAC on the VF, out of the pool), the
// pool exhausted (virsh says why, nothing leaked), save (refused for a
// VFIO device, nothing changed; so there is no restore to test), reboot
// (same QEMU, VF and allocation), shutdown and destroy (released, the VF
// back on igbvf and in the pool).
// Two L2 guests boot far enough to answer ACPI (reboot, shutdown); the
// others never need to boot.
func TestLibvirtLifecycle(t *testing.T) {
	tb := testenv.ForTest(t, testenv.HostSpec{Name: "kvm1", VFs: 2, Flavour: testenv.FlavourLibvirt})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	began := time.Now()
	ready, _ := tb.ReadyAfter("kvm1")
	var figures []string
	figure := func(what string, since time.Time) {
		figures = append(figures, fmt.Sprintf("%s: %v", what, time.Since(since).Round(100*time.Millisecond)))
	}
	figures = append(figures, fmt.Sprintf("kvm1 ready: %v", ready.Round(100*time.Millisecond)))

	run := func(cmd string) string {
		t.Helper()
		out, err := tb.MustExec(ctx, "kvm1", cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	virsh := func(args ...string) string {
		t.Helper()
		t0 := time.Now()
		out, err := tb.Virsh(ctx, "kvm1", args...)
		if err != nil {
			t.Fatal(err)
		}
		figure("virsh "+strings.Join(args, " "), t0)
		return strings.TrimSpace(out)
	}
	// virshFails runs a virsh command that must fail and returns what
	// virsh printed on stderr.
	virshFails := func(args ...string) string {
		t.Helper()
		t0 := time.Now()
		res, err := tb.Exec(ctx, "kvm1", "virsh -c qemu:///system "+strings.Join(args, " "))
		if err != nil {
			t.Fatal(err)
		}
		figure("virsh "+strings.Join(args, " ")+" (fails)", t0)
		if res.ExitCode == 0 {
			t.Fatalf("virsh %s succeeded, want a failure:\n%s", strings.Join(args, " "), res.Stdout)
		}
		return strings.TrimSpace(string(res.Stderr))
	}
	state := func(dom string) string {
		t.Helper()
		out, err := tb.Virsh(ctx, "kvm1", "domstate", dom)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	vms := func() []*vflagpb.VMInterface {
		t.Helper()
		var r vflagpb.ListVMsResponse
		if err := protojson.Unmarshal([]byte(run("vflag --json vms")), &r); err != nil {
			t.Fatalf("vflag --json vms: %v", err)
		}
		return r.GetInterfaces()
	}
	used := func() int {
		t.Helper()
		var r vflagpb.StatusResponse
		if err := protojson.Unmarshal([]byte(run("vflag --json status")), &r); err != nil {
			t.Fatalf("vflag --json status: %v", err)
		}
		n := 0
		for _, b := range r.GetBonds() {
			for _, p := range b.GetPorts() {
				n += int(p.GetVfsUsed())
			}
		}
		return n
	}
	driver := func(pci string) string {
		t.Helper()
		return run("basename $(readlink /sys/bus/pci/devices/" + pci + "/driver)")
	}
	t.Cleanup(func() {
		t.Logf("figures (wall %v):\n  %s", time.Since(began).Round(time.Second), strings.Join(figures, "\n  "))
		if !t.Failed() {
			return
		}
		res, err := tb.Exec(context.Background(), "kvm1", `echo "== /tmp/vflagd.log"; tail -n 60 /tmp/vflagd.log
echo "== libvirtd.log"; tail -n 60 /var/log/libvirt/libvirtd.log
echo "== syslog"; tail -n 30 /tmp/syslog.log
for f in /var/log/libvirt/qemu/*.log; do echo "== $f"; tail -n 10 "$f"; done
echo "== vflag vms"; vflag vms; echo "== ip link"; ip link show pf0; ip link show pf1
echo "== virsh list"; virsh -c qemu:///system list --all
echo "== pool"; virsh -c qemu:///system net-dumpxml vflag-bond0; virsh -c qemu:///system net-port-list vflag-bond0`)
		if err == nil {
			t.Logf("kvm1 at the failure:\n%s%s", res.Stdout, res.Stderr)
		}
	})

	// The hook where libvirt looks for it (libvirtd restarted to find it),
	// then vflagd with 2 VFs per PF: the pool of the active PF is VFs 0
	// and 1. vflagd connects to libvirtd (libvirt: enabled by default).
	run(`set -e
test -x /usr/bin/vflag-hook || { echo "no /usr/bin/vflag-hook in the image: build it (make build)" >&2; exit 1; }
install -D -m 0755 /usr/bin/vflag-hook /etc/libvirt/hooks/qemu.d/vflag
rm -f ` + hooks.DefaultConfigPath + `
[ -S /dev/log ] || busybox syslogd -O /tmp/syslog.log`)
	t0 := time.Now()
	if err := tb.RestartLibvirtd(ctx, "kvm1"); err != nil {
		t.Fatal(err)
	}
	figure("restart libvirtd (hook installed)", t0)
	run(scenario.StartVflagdScript(2, "", ""))

	active := run("cat /sys/class/net/bond0/bonding/active_slave")
	var poolVFs []string // the active PF's VFs vflagd uses, by index
	for i := range 2 {
		pci, err := tb.VFAddress(ctx, "kvm1", active, i)
		if err != nil {
			t.Fatal(err)
		}
		poolVFs = append(poolVFs, pci)
	}
	// pool is what the live vflag-bond0 network lists.
	pool := func() ([]string, error) {
		out, err := tb.Virsh(ctx, "kvm1", "net-dumpxml", hooks.NetworkPrefix+"bond0")
		if err != nil {
			return nil, err
		}
		bond, vfs, err := hooks.PoolNetworkVFs(out)
		if err == nil && bond != "bond0" {
			err = fmt.Errorf("pool network of bond %q", bond)
		}
		return vfs, err
	}
	// vflagd defines vflag-bond0 (persistent, active, autostart) and
	// keeps it listing the free VFs of the active PF. It syncs in the
	// background, so wait for it.
	poolIs := func(when string, want ...string) {
		t.Helper()
		var got []string
		var err error
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err = pool()
			if err == nil && slices.Equal(sorted(got), sorted(want)) {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Fatalf("%s: vflag-bond0 lists %v (%v), want the free VFs of %s: %v", when, got, err, active, want)
	}
	t0 = time.Now()
	poolIs("vflagd started", poolVFs...)
	figure("vflag-bond0 defined by vflagd", t0)
	if got := run("virsh -c qemu:///system net-list --all | grep vflag-bond0"); !regexp.MustCompile(`vflag-bond0\s+active\s+yes\s+yes`).MatchString(got) {
		t.Errorf("vflag-bond0 is not active, autostart and persistent: %s", got)
	}

	// Three domains take a VF from the pool.
	const macA, macB, macC = "52:54:00:1f:00:0a", "52:54:00:1f:00:0b", "52:54:00:1f:00:0c"
	for name, mac := range map[string]string{"vma": macA, "vmb": macB, "vmc": macC} {
		dev := `    <interface type='network'>
      <mac address='` + mac + `'/>
      <source network='vflag-bond0'/>
    </interface>
`
		if err := tb.DefineNested(ctx, "kvm1", testenv.NestedGuest{Name: name, Devices: dev}); err != nil {
			t.Fatal(err)
		}
	}
	// liveVF is the VF libvirt gave dom's interface with mac: the live XML
	// shows it as a hostdev interface with the VF's address.
	liveVF := func(dom, mac string) string {
		t.Helper()
		var d libvirtxml.Domain
		if err := d.Unmarshal(virsh("dumpxml", dom)); err != nil {
			t.Fatalf("dumpxml %s: %v", dom, err)
		}
		for _, i := range d.Devices.Interfaces {
			if i.MAC == nil || i.MAC.Address != mac {
				continue
			}
			if i.Source == nil || i.Source.Hostdev == nil || i.Source.Hostdev.PCI == nil || i.Source.Hostdev.PCI.Address == nil {
				t.Fatalf("%s: interface %s is not a hostdev VF in the live XML", dom, mac)
			}
			a := i.Source.Hostdev.PCI.Address
			return fmt.Sprintf("%04x:%02x:%02x.%x", *a.Domain, *a.Bus, *a.Slot, *a.Function)
		}
		t.Fatalf("%s has no interface with MAC %s", dom, mac)
		return ""
	}
	// holds checks that vflag vms lists exactly these domains' VFs, each
	// on the active PF with the domain's MAC, and returns them by domain.
	type holding struct{ dom, mac, pci string }
	holds := func(when string, want ...holding) map[string]*vflagpb.VMInterface {
		t.Helper()
		got := map[string]*vflagpb.VMInterface{}
		for _, i := range vms() {
			got[i.GetVm()] = i
		}
		if len(got) != len(want) {
			t.Errorf("%s: vflag vms lists %d interfaces, want %d: %v", when, len(got), len(want), got)
		}
		for _, w := range want {
			i := got[w.dom]
			if i == nil {
				t.Errorf("%s: vflag vms does not list %s", when, w.dom)
				continue
			}
			if i.GetMac() != w.mac || i.GetVfPci() != w.pci || i.GetPf() != active || i.GetBond() != "bond0" {
				t.Errorf("%s: vflag vms has %v, want %s on %s VF %s with MAC %s", when, i, w.dom, active, w.pci, w.mac)
			}
		}
		if n := used(); n != len(want) {
			t.Errorf("%s: vflag status shows %d VFs used, want %d", when, n, len(want))
		}
		return got
	}
	// vfLine is what ip link show says of the active PF's VF with pci.
	vfLine := func(pci string) string {
		t.Helper()
		idx := slices.Index(poolVFs, pci)
		if idx < 0 {
			t.Fatalf("VF %s is not one of the pool's %v", pci, poolVFs)
		}
		out := run("ip link show " + active)
		l := regexp.MustCompile(`(?m)^\s*vf ` + fmt.Sprint(idx) + `\s.*$`).FindString(out)
		if l == "" {
			t.Fatalf("ip link show %s has no line for VF %d:\n%s", active, idx, out)
		}
		return strings.TrimSpace(l)
	}
	started := func(dom, mac string) string {
		t.Helper()
		pci := liveVF(dom, mac)
		if !slices.Contains(poolVFs, pci) {
			t.Fatalf("%s got VF %s, not one of the active PF %s's pool %v", dom, pci, active, poolVFs)
		}
		if l := vfLine(pci); !strings.Contains(l, "link/ether "+mac) {
			t.Errorf("%s runs with VF %s, but ip link shows %q, without its MAC %s", dom, pci, l, mac)
		}
		if got := driver(pci); got != "vfio-pci" {
			t.Errorf("VF %s of running %s is on %q, want vfio-pci", pci, dom, got)
		}
		return pci
	}

	// 1. virsh start: each domain gets a free VF of the active PF, vflagd
	// adopts it and takes it out of the pool. The two boot from here on.
	bootA := time.Now()
	virsh("start", "vma")
	pciA := started("vma", macA)
	holds("vma started", holding{"vma", macA, pciA})
	others := slices.DeleteFunc(slices.Clone(poolVFs), func(p string) bool { return p == pciA })
	poolIs("vma started", others...)
	bootB := time.Now()
	virsh("start", "vmb")
	pciB := started("vmb", macB)
	if pciB == pciA {
		t.Fatalf("vmb got %s, the VF vma holds", pciB)
	}
	holds("vmb started", holding{"vma", macA, pciA}, holding{"vmb", macB, pciB})
	poolIs("vmb started")

	// 2. The pool is exhausted: virsh start says why, and nothing leaks.
	msg := virshFails("start", "vmc")
	t.Logf("virsh start vmc (pool exhausted):\n%s", msg)
	for _, want := range []string{"Failed to start domain 'vmc'", "network 'vflag-bond0' requires exclusive access to interfaces, but none are available"} {
		if !strings.Contains(msg, want) {
			t.Errorf("virsh start vmc with the pool exhausted: error lacks %q:\n%s", want, msg)
		}
	}
	if got := state("vmc"); got != "shut off" {
		t.Errorf("vmc after the refused start: %q, want shut off", got)
	}
	before := holds("vmc refused", holding{"vma", macA, pciA}, holding{"vmb", macB, pciB})

	// 3. virsh save: QEMU cannot migrate a VFIO VF, libvirt refuses before
	// anything happens; vmb runs on with its VF.
	msg = virshFails("save", "vmb", "/tmp/vmb.save")
	t.Logf("virsh save vmb:\n%s", msg)
	for _, want := range []string{"Failed to save domain 'vmb'", "cannot migrate domain", pciB, "VFIO migration is not supported"} {
		if !strings.Contains(msg, want) {
			t.Errorf("virsh save vmb: error lacks %q:\n%s", want, msg)
		}
	}
	if got := state("vmb"); got != "running" {
		t.Errorf("vmb after the refused save: %q, want running", got)
	}
	if got := run("ls /tmp/vmb.save 2>/dev/null; true"); got != "" {
		t.Errorf("the refused save left %s", got)
	}
	if got := liveVF("vmb", macB); got != pciB {
		t.Errorf("vmb has VF %s after the refused save, had %s", got, pciB)
	}
	holds("vmb save refused", holding{"vma", macA, pciA}, holding{"vmb", macB, pciB})

	// Both guests boot far enough to answer ACPI (their agent answers).
	for dom, since := range map[string]time.Time{"vma": bootA, "vmb": bootB} {
		wctx, wcancel := context.WithTimeout(ctx, 6*time.Minute)
		err := tb.WaitNested(wctx, "kvm1", dom)
		wcancel()
		if err != nil {
			console, _ := tb.MustExec(ctx, "kvm1", "tail -c 2000 "+testenv.NestedConsoleLog(dom))
			t.Fatalf("%v\nconsole of %s:\n%s", err, dom, console)
		}
		figure(dom+" agent answers after virsh start", since)
	}

	// 4. virsh reboot: the guest reboots in the same QEMU (libvirt's
	// ACPI reboot resets it when it powers off); the VF and vflagd's
	// allocation stay as they were.
	qemuPID := func(dom string) string {
		t.Helper()
		return run("cat /run/libvirt/qemu/" + dom + ".pid")
	}
	pidB := qemuPID("vmb")
	run("(virsh -c qemu:///system event vmb --event reboot --timeout 240 > /tmp/vmb-reboot.event 2>&1 &)")
	t0 = time.Now()
	virsh("reboot", "vmb")
	for !strings.Contains(run("cat /tmp/vmb-reboot.event"), "event 'reboot' for domain 'vmb'") {
		if time.Since(t0) > 4*time.Minute {
			t.Fatalf("no reboot event for vmb within 4 minutes of virsh reboot: %s", run("cat /tmp/vmb-reboot.event"))
		}
		time.Sleep(time.Second)
	}
	figure("virsh reboot vmb until libvirt's reboot event", t0)
	if got := state("vmb"); got != "running" {
		t.Errorf("vmb after virsh reboot: %q, want running", got)
	}
	if got := qemuPID("vmb"); got != pidB {
		t.Errorf("vmb runs in QEMU %s after virsh reboot, was %s", got, pidB)
	}
	if got := liveVF("vmb", macB); got != pciB {
		t.Errorf("vmb has VF %s after virsh reboot, had %s", got, pciB)
	}
	after := holds("vmb rebooted", holding{"vma", macA, pciA}, holding{"vmb", macB, pciB})
	if a, b := after["vmb"].GetSinceUnixMs(), before["vmb"].GetSinceUnixMs(); a != b {
		t.Errorf("vmb's allocation changed across virsh reboot: since %d, was %d", a, b)
	}

	// 5. virsh shutdown: the guest powers off, the release hook runs and
	// vflagd gives the VF back: igbvf, no MAC of vma, in the pool again.
	t0 = time.Now()
	virsh("shutdown", "vma")
	for state("vma") != "shut off" {
		if time.Since(t0) > 3*time.Minute {
			t.Fatal("vma not shut off within 3 minutes of virsh shutdown")
		}
		time.Sleep(time.Second)
	}
	figure("virsh shutdown vma until shut off", t0)
	released := func(dom, mac, pci string) {
		t.Helper()
		if got := driver(pci); got != "igbvf" {
			t.Errorf("VF %s after %s stopped: driver %q, want igbvf", pci, dom, got)
		}
		if l := vfLine(pci); strings.Contains(l, mac) {
			t.Errorf("VF %s keeps %s's MAC after it stopped: %s", pci, dom, l)
		}
	}
	released("vma", macA, pciA)
	holds("vma shut down", holding{"vmb", macB, pciB})
	poolIs("vma shut down", pciA)

	// 6. virsh destroy: the same, at once.
	virsh("destroy", "vmb")
	released("vmb", macB, pciB)
	holds("vmb destroyed")
	poolIs("vmb destroyed", poolVFs...)

	// 7. With VFs free again, vmc starts.
	virsh("start", "vmc")
	pciC := started("vmc", macC)
	holds("vmc started", holding{"vmc", macC, pciC})
	virsh("destroy", "vmc")
	released("vmc", macC, pciC)

	for _, d := range []string{"vma", "vmb", "vmc"} {
		virsh("undefine", d)
	}
	holds("at the end")
	poolIs("at the end", poolVFs...)
	if got := run("virsh -c qemu:///system list --all --name"); got != "" {
		t.Errorf("at the end: domains left: %s", got)
	}
}

// sorted returns a sorted copy of s.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
