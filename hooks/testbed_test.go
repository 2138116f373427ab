package hooks_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/hooks"
	"github.com/vflag/vflag/testenv"
	"github.com/vflag/vflag/testenv/scenario"
)

// TestHookUnderLibvirt installs vflag-hook as /etc/libvirt/hooks/qemu.d/vflag
// in a KVM-host VM running a real libvirtd, QEMU and vflagd, and checks the
// VM lifecycles a virsh user goes through: a Nova-style hostdev VF started,
// adopted and configured through its PF; released on destroy with nothing
// leaked; a second domain naming the held VF refused with the holder's
// name in virsh's error; a VF outside vflag's pool left alone, or refused
// with unmanaged_hostdev: error; vflagd down refusing vflag domains only;
// and a libvirtd restart re-asserting a running domain's VF (the reconnect
// operation). The hook runs at virsh start and destroy, so no L2 guest
// needs to boot. It ends with vflagd's libvirt side releasing a domain
// the hook could not report (lifecycle event; reconciliation after a
// vflagd restart). Pool networks are TestLibvirtLifecycle's.
func TestHookUnderLibvirt(t *testing.T) {
	tb := testenv.ForTest(t, testenv.HostSpec{Name: "kvm1", VFs: 4, Flavour: testenv.FlavourLibvirt})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ready, _ := tb.ReadyAfter("kvm1")
	t.Logf("kvm1 (libvirt flavour) ready after %v", ready)

	run := func(cmd string) string {
		t.Helper()
		out, err := tb.MustExec(ctx, "kvm1", cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	var figures []string
	// virsh runs a virsh command that must succeed and notes how long it
	// took.
	virsh := func(args ...string) string {
		t.Helper()
		began := time.Now()
		out, err := tb.Virsh(ctx, "kvm1", args...)
		if err != nil {
			t.Fatal(err)
		}
		figures = append(figures, fmt.Sprintf("virsh %s: %v", strings.Join(args, " "), time.Since(began).Round(100*time.Millisecond)))
		return strings.TrimSpace(out)
	}
	// virshFails runs a virsh command that must fail and returns its
	// error output, as the virsh user reads it.
	virshFails := func(args ...string) string {
		t.Helper()
		began := time.Now()
		res, err := tb.Exec(ctx, "kvm1", "virsh -c qemu:///system "+strings.Join(args, " "))
		if err != nil {
			t.Fatal(err)
		}
		figures = append(figures, fmt.Sprintf("virsh %s (fails): %v", strings.Join(args, " "), time.Since(began).Round(100*time.Millisecond)))
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
	// vms is vflag vms: the VM interfaces vflagd knows.
	vms := func() []*vflagpb.VMInterface {
		t.Helper()
		var r vflagpb.ListVMsResponse
		if err := protojson.Unmarshal([]byte(run("vflag --json vms")), &r); err != nil {
			t.Fatalf("vflag --json vms: %v", err)
		}
		return r.GetInterfaces()
	}
	// used is the number of VFs vflag status shows used.
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
	t.Cleanup(func() {
		t.Logf("figures:\n  %s", strings.Join(figures, "\n  "))
		if !t.Failed() {
			return
		}
		res, err := tb.Exec(context.Background(), "kvm1", `echo "== /tmp/vflagd.log"; tail -n 60 /tmp/vflagd.log
echo "== libvirtd.log"; tail -n 80 /var/log/libvirt/libvirtd.log
echo "== syslog (the hook's warnings and errors)"; tail -n 40 /tmp/syslog.log
for f in /var/log/libvirt/qemu/*.log; do echo "== $f"; tail -n 15 "$f"; done
echo "== vflag vms"; vflag vms; echo "== ip link"; ip link show pf0; ip link show pf1
echo "== virsh list"; virsh -c qemu:///system list --all`)
		if err == nil {
			t.Logf("kvm1 at the failure:\n%s%s", res.Stdout, res.Stderr)
		}
	})

	// vflagd manages bond0 with 3 of the 4 VFs of each PF; the hook goes
	// where libvirt looks for it, and libvirtd is restarted to find it
	// (with the hook's calls in its log, and a syslog for the hook).
	run(scenario.StartVflagdScript(3, "", ""))
	run(`set -e
test -x /usr/bin/vflag-hook || { echo "no /usr/bin/vflag-hook in the image: build it (make build)" >&2; exit 1; }
install -D -m 0755 /usr/bin/vflag-hook /etc/libvirt/hooks/qemu.d/vflag
rm -f ` + hooks.DefaultConfigPath + `
[ -S /dev/log ] || busybox syslogd -O /tmp/syslog.log
cat >> /etc/libvirt/libvirtd.conf <<'EOF'
log_filters="1:util.hook"
log_outputs="1:file:/var/log/libvirt/libvirtd.log"
EOF`)
	began := time.Now()
	if err := tb.RestartLibvirtd(ctx, "kvm1"); err != nil {
		t.Fatal(err)
	}
	figures = append(figures, fmt.Sprintf("restart libvirtd (hook installed): %v", time.Since(began).Round(100*time.Millisecond)))

	active := run("cat /sys/class/net/bond0/bonding/active_slave")
	vfPCI := func(idx int) string {
		t.Helper()
		pci, err := tb.VFAddress(ctx, "kvm1", active, idx)
		if err != nil {
			t.Fatal(err)
		}
		return pci
	}
	driver := func(pci string) string {
		t.Helper()
		return run("basename $(readlink /sys/bus/pci/devices/" + pci + "/driver)")
	}
	// vfLine is what ip link show says of VF idx of the active PF.
	vfLine := func(idx int) string {
		t.Helper()
		re := regexp.MustCompile(`(?m)^\s*vf ` + fmt.Sprint(idx) + `\s.*$`)
		out := run("ip link show " + active)
		l := re.FindString(out)
		if l == "" {
			t.Fatalf("ip link show %s has no line for VF %d:\n%s", active, idx, out)
		}
		return strings.TrimSpace(l)
	}
	define := func(g testenv.NestedGuest) {
		t.Helper()
		if err := tb.DefineNested(ctx, "kvm1", g); err != nil {
			t.Fatal(err)
		}
	}
	hostdev := func(pci, mac string, vlan int) string {
		t.Helper()
		x, err := testenv.HostdevInterfaceXML(pci, mac, vlan)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	adopt := func(mac string) string {
		return `    <vflag:vflag xmlns:vflag="` + hooks.Namespace + `">
      <vflag:interface mac="` + mac + `" mode="adopt"/>
    </vflag:vflag>`
	}

	// 1. A Nova-style hostdev VF with MAC, VLAN 100 and adopt metadata:
	// virsh start adopts it; vflagd configured it through the PF.
	const mac1, mac2, mac3 = "fa:16:3e:2b:7c:91", "fa:16:3e:2b:7c:92", "fa:16:3e:2b:7c:93"
	pci1 := vfPCI(1)
	define(testenv.NestedGuest{Name: "nova1", Devices: hostdev(pci1, mac1, 100), Metadata: adopt(mac1)})
	virsh("start", "nova1")
	if got := state("nova1"); got != "running" {
		t.Fatalf("nova1 after virsh start: %q, want running", got)
	}
	uuid := run("virsh -c qemu:///system domuuid nova1")
	held := func(when string) {
		t.Helper()
		got := vms()
		if len(got) != 1 {
			t.Fatalf("%s: vflag vms lists %d interfaces, want nova1's alone: %v", when, len(got), got)
		}
		i := got[0]
		if i.GetVm() != "nova1" || i.GetMac() != mac1 || i.GetVfPci() != pci1 || i.GetPf() != active || i.GetVf() != 1 ||
			i.GetVlan() != 100 || i.GetMode() != "adopt" || i.GetDomainUuid() != uuid {
			t.Errorf("%s: vflag vms has %v, want nova1 (uuid %s) on %s vf 1 (%s), MAC %s, vlan 100, mode adopt",
				when, i, uuid, active, pci1, mac1)
		}
		if n := used(); n != 1 {
			t.Errorf("%s: vflag status shows %d VFs used, want 1", when, n)
		}
	}
	held("after virsh start nova1")
	if st := run("vflag status"); !strings.Contains(st, "libvirt: connected to qemu:///system") {
		t.Errorf("vflag status does not show vflagd connected to libvirtd:\n%s", st)
	}
	line1 := vfLine(1)
	for _, want := range []string{"link/ether " + mac1, "vlan 100", "spoof checking on", "trust off"} {
		if !strings.Contains(line1, want) {
			t.Errorf("ip link show %s, VF 1: %q lacks %q", active, line1, want)
		}
	}
	if got := driver(pci1); got != "vfio-pci" {
		t.Errorf("VF %s driver while nova1 runs = %q, want vfio-pci", pci1, got)
	}

	// 2. Another domain naming the same VF: the hook refuses it at
	// prepare, naming the holder; nova1 keeps its VF as it was.
	define(testenv.NestedGuest{Name: "nova2", Devices: hostdev(pci1, mac2, 100), Metadata: adopt(mac2)})
	msg := virshFails("start", "nova2")
	t.Logf("virsh start nova2 (the VF nova1 holds):\n%s", msg)
	for _, want := range []string{"Hook script execution failed", "vflag: cannot start VM nova2", pci1, "held by nova1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("virsh start nova2: error lacks %q:\n%s", want, msg)
		}
	}
	if got := state("nova2"); got != "shut off" {
		t.Errorf("nova2 after the refused start: %q, want shut off", got)
	}
	held("after the refused start of nova2")
	if got := vfLine(1); got != line1 {
		t.Errorf("VF 1 of %s changed by the refused start of nova2:\n was %s\n now %s", active, line1, got)
	}
	if got := driver(pci1); got != "vfio-pci" {
		t.Errorf("VF %s driver after the refused start of nova2 = %q, want vfio-pci (nova1 has it)", pci1, got)
	}

	// 3. virsh destroy: the release hook ran after libvirt restored what
	// it saved of the VF, so vflagd's reset is what stays.
	virsh("destroy", "nova1")
	if got := vms(); len(got) != 0 {
		t.Errorf("after virsh destroy nova1: vflag vms still lists %v", got)
	}
	if n := used(); n != 0 {
		t.Errorf("after virsh destroy nova1: vflag status shows %d VFs used, want 0", n)
	}
	if l := vfLine(1); strings.Contains(l, mac1) || strings.Contains(l, "vlan 100") {
		t.Errorf("after virsh destroy nova1, VF 1 of %s keeps nova1's settings: %s", active, l)
	}
	if got := driver(pci1); got != "igbvf" {
		t.Errorf("VF %s driver after virsh destroy nova1 = %q, want igbvf", pci1, got)
	}

	// 4. A VF of a bond port that vflagd does not use (VF 3: vflagd has
	// VFs 0-2): by default not vflag's business, the VM starts as without
	// vflag; with unmanaged_hostdev: error it is refused, and so is an
	// address that is no VF at all.
	pci3 := vfPCI(3)
	define(testenv.NestedGuest{Name: "other1", Devices: hostdev(pci3, mac3, 0)})
	virsh("start", "other1")
	if got := vms(); len(got) != 0 {
		t.Errorf("vflag vms lists %v for other1, whose VF vflagd does not use", got)
	}
	if l := vfLine(3); !strings.Contains(l, mac3) {
		t.Errorf("VF 3 of %s while other1 runs: %s, want libvirt's MAC %s", active, l, mac3)
	}
	virsh("destroy", "other1")
	run("printf 'unmanaged_hostdev: error\\n' > " + hooks.DefaultConfigPath)
	msg = virshFails("start", "other1")
	t.Logf("virsh start other1 (unmanaged_hostdev: error):\n%s", msg)
	for _, want := range []string{"vflag: cannot start VM other1", pci3, "not a VF vflag uses"} {
		if !strings.Contains(msg, want) {
			t.Errorf("virsh start other1 with unmanaged_hostdev: error: error lacks %q:\n%s", want, msg)
		}
	}
	const ghostPCI = "0000:7f:1f.7"
	define(testenv.NestedGuest{Name: "ghost1", Devices: hostdev(ghostPCI, mac3, 0)})
	msg = virshFails("start", "ghost1")
	t.Logf("virsh start ghost1 (no such VF, unmanaged_hostdev: error):\n%s", msg)
	for _, want := range []string{"vflag: cannot start VM ghost1", ghostPCI, "is not a VF of a bond port", "unmanaged_hostdev: error"} {
		if !strings.Contains(msg, want) {
			t.Errorf("virsh start ghost1: error lacks %q:\n%s", want, msg)
		}
	}
	run("rm " + hooks.DefaultConfigPath)
	if n := used(); n != 0 {
		t.Errorf("after the unmanaged VFs: vflag status shows %d VFs used, want 0", n)
	}

	// 5. vflagd down: a vflag domain does not start, and virsh says why
	// and what to do; a domain without vflag interfaces starts.
	run(`kill $(pidof vflagd)
i=0; while pidof vflagd >/dev/null; do i=$((i+1)); [ $i -lt 100 ] || { echo "vflagd does not stop" >&2; exit 1; }; sleep 0.1; done`)
	msg = virshFails("start", "nova1")
	t.Logf("virsh start nova1 (vflagd down):\n%s", msg)
	for _, want := range []string{"vflag: cannot start VM nova1", pci1, "vflagd is not running", "fail_open: true"} {
		if !strings.Contains(msg, want) {
			t.Errorf("virsh start nova1 with vflagd down: error lacks %q:\n%s", want, msg)
		}
	}
	if got := state("nova1"); got != "shut off" {
		t.Errorf("nova1 after the start with vflagd down: %q, want shut off", got)
	}
	define(testenv.NestedGuest{Name: "plain1"})
	virsh("start", "plain1")
	if got := state("plain1"); got != "running" {
		t.Errorf("plain1 (no NIC) with vflagd down: %q, want running", got)
	}
	virsh("destroy", "plain1")

	// 5b. fail_open: with vflagd down nova1 starts anyway and libvirt
	// gives it VF 1 (vfio-pci). vflagd, started afterwards, does not know
	// it: it must neither reset that VF nor hand it to anyone else.
	run("printf 'fail_open: true\\n' > " + hooks.DefaultConfigPath)
	virsh("start", "nova1")
	if got := driver(pci1); got != "vfio-pci" {
		t.Fatalf("nova1 started fail-open: VF %s driver %q, want vfio-pci", pci1, got)
	}
	run(scenario.StartVflagdScript(3, "", ""))
	if l := vfLine(1); !strings.Contains(l, mac1) {
		t.Errorf("vflagd started while fail-open nova1 holds VF 1: the VF lost nova1's MAC: %s", l)
	}
	if got := vms(); len(got) != 0 {
		t.Errorf("vflagd lists %d interfaces, want none (nova1 started without it)", len(got))
	}
	if log := run("cat /tmp/vflagd.log"); !strings.Contains(log, "VF is assigned to a guest vflag does not know") {
		t.Errorf("vflagd did not say it leaves VF %s alone:\n%s", pci1, log)
	}
	// Three VMs ask for the three VFs vflagd uses per PF: none gets VF 1
	// of the active PF.
	for i := 1; i <= 3; i++ {
		out := run(fmt.Sprintf("vflag attach failopen%d --mac 52:54:00:fa:00:0%d", i, i))
		if strings.Contains(out, pci1) {
			t.Errorf("vflag attach failopen%d got %s, the VF fail-open nova1 holds:\n%s", i, pci1, out)
		}
	}
	for i := 1; i <= 3; i++ {
		run(fmt.Sprintf("vflag detach failopen%d >/dev/null", i))
	}
	virsh("destroy", "nova1")
	run("rm " + hooks.DefaultConfigPath + `; kill $(pidof vflagd)
i=0; while pidof vflagd >/dev/null; do i=$((i+1)); [ $i -lt 100 ] || { echo "vflagd does not stop" >&2; exit 1; }; sleep 0.1; done`)

	// 6. libvirtd restarted while nova1 runs: libvirtd reconnects to its
	// QEMU and runs the reconnect hook; nova1 keeps its VF as it was.
	run(scenario.StartVflagdScript(3, "", ""))
	if n := used(); n != 0 {
		t.Errorf("vflagd restarted: vflag status shows %d VFs used, want 0", n)
	}
	virsh("start", "nova1")
	uuid = run("virsh -c qemu:///system domuuid nova1")
	held("after virsh start nova1 again")
	line1 = vfLine(1)
	restart := func(why string) {
		t.Helper()
		began := time.Now()
		if err := tb.RestartLibvirtd(ctx, "kvm1"); err != nil {
			t.Fatal(err)
		}
		figures = append(figures, fmt.Sprintf("restart libvirtd (%s): %v", why, time.Since(began).Round(100*time.Millisecond)))
		if got := state("nova1"); got != "running" {
			t.Fatalf("nova1 after restarting libvirtd (%s): %q, want running", why, got)
		}
	}
	restart("nova1 running")
	held("after restarting libvirtd")
	// vflagd lost libvirtd and connects again.
	deadline := time.Now().Add(30 * time.Second)
	for st := run("vflag status"); !strings.Contains(st, "libvirt: connected to qemu:///system"); st = run("vflag status") {
		if time.Now().After(deadline) {
			t.Fatalf("vflagd did not reconnect to libvirtd within 30 s of its restart:\n%s", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := vfLine(1); got != line1 {
		t.Errorf("VF 1 of %s changed by the libvirtd restart:\n was %s\n now %s", active, line1, got)
	}
	// The reconnect hook does the work: once vflagd has forgotten nova1
	// (its VF reset), the next libvirtd restart gives it back its VF,
	// configured as before.
	run("vflag detach nova1 >/dev/null")
	if l := vfLine(1); strings.Contains(l, mac1) {
		t.Fatalf("vflag detach nova1 left VF 1 of %s configured: %s", active, l)
	}
	restart("nova1 running, unknown to vflagd")
	held("after the reconnect hook re-asserted nova1")
	if got := vfLine(1); got != line1 {
		t.Errorf("VF 1 of %s after the reconnect hook:\n want %s\n got  %s", active, line1, got)
	}

	// 7. vflagd's libvirt side catches what the hook could not say. (a)
	// The hook cannot run when nova1 is destroyed (moved away: libvirt
	// logs the failure and destroys all the same): vflagd's lifecycle
	// event releases the VF. (b) vflagd is down when nova1 is destroyed:
	// at start it reloads nova1's allocation, and its reconciliation with
	// libvirt releases it.
	released := func(when string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for used() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: vflagd still holds %v 20 s later", when, vms())
			}
			time.Sleep(500 * time.Millisecond)
		}
		if l := vfLine(1); strings.Contains(l, mac1) {
			t.Errorf("%s: VF 1 of %s keeps nova1's MAC: %s", when, active, l)
		}
	}
	run("mv /etc/libvirt/hooks/qemu.d/vflag /tmp/vflag-hook.away")
	virsh("destroy", "nova1")
	released("nova1 destroyed without its release hook")
	if log := run("cat /tmp/vflagd.log"); !strings.Contains(log, "domain nova1 stopped (destroyed)") {
		t.Errorf("vflagd's log does not say the lifecycle event released nova1:\n%s", log)
	}
	run("mv /tmp/vflag-hook.away /etc/libvirt/hooks/qemu.d/vflag")
	virsh("start", "nova1")
	began = time.Now()
	held("after virsh start nova1 (the hook back)")
	run(`kill $(pidof vflagd)
i=0; while pidof vflagd >/dev/null; do i=$((i+1)); [ $i -lt 100 ] || { echo "vflagd does not stop" >&2; exit 1; }; sleep 0.1; done`)
	virsh("destroy", "nova1")
	// The allocation must be older than DomainGrace to be reconciled away
	// (a domain being started is not listed as running yet).
	time.Sleep(time.Until(began.Add(31 * time.Second)))
	run(scenario.StartVflagdScript(3, "", ""))
	released("vflagd restarted after nova1 was destroyed")
	if log := run("cat /tmp/vflagd.log"); !strings.Contains(log, "reconciled with libvirt") {
		t.Errorf("vflagd's log does not say the reconciliation released nova1:\n%s", log)
	}

	// Clean up as a user would; nothing is left in use.
	for _, d := range []string{"nova1", "nova2", "other1", "ghost1", "plain1"} {
		virsh("undefine", d)
	}
	if got := vms(); len(got) != 0 {
		t.Errorf("at the end: vflag vms lists %v", got)
	}
	if n := used(); n != 0 {
		t.Errorf("at the end: vflag status shows %d VFs used, want 0", n)
	}
	if got := run("virsh -c qemu:///system list --all --name"); got != "" {
		t.Errorf("at the end: domains left: %s", got)
	}
}
