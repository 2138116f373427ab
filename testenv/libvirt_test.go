package testenv

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLibvirtFlavour boots one KVM-host VM of the libvirt flavour and one
// nested guest in it, and checks what the libvirt scenarios rely on: a real
// libvirtd and QEMU that answer at once (QEMU's capabilities come from the
// image, not from a probe at boot), a VF passed to a guest through
// <interface type='hostdev'> with the MAC libvirt sets, a VF teamed with a
// virtio standby, the guest's agent reachable through the host, the guest
// on the fabric through both, and the VFs handed back to the host when the
// guest is shut down.
func TestLibvirtFlavour(t *testing.T) {
	tb := ForTest(t, HostSpec{Name: "kvm1", VFs: 2, Flavour: FlavourLibvirt})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
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
	virsh := func(args ...string) string {
		t.Helper()
		out, err := tb.Virsh(ctx, "kvm1", args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	// Real libvirt and QEMU from bookworm-backports.
	ver := virsh("version")
	for _, want := range []string{"libvirt 11.", "hypervisor: QEMU 10."} {
		if !strings.Contains(ver, want) {
			t.Errorf("virsh version lacks %q:\n%s", want, ver)
		}
	}
	// libvirt found QEMU's capabilities in the image's cache and wrote none
	// at boot: the cache has one file, older than the boot.
	if got := run(`boot=$(( $(date +%s) - $(cut -d. -f1 /proc/uptime) ))
n=0
for f in /var/cache/libvirt/qemu/capabilities/*.xml; do
	n=$((n+1))
	[ "$(stat -c %Y "$f")" -lt "$boot" ] || echo "$f written at boot: libvirtd probed QEMU again"
done
[ $n = 1 ] || echo "$n QEMU capability caches, want 1"`); got != "" {
		t.Error(got)
	}

	// Every VF has an IOMMU group of its own, so it can go to vfio-pci
	// while the PF stays with igb.
	active := run("cat /sys/class/net/bond0/bonding/active_slave")
	pci, err := tb.VFAddress(ctx, "kvm1", active, 1)
	if err != nil {
		t.Fatal(err)
	}
	group := run("ls /sys/bus/pci/devices/" + pci + "/iommu_group/devices")
	if group != pci {
		t.Errorf("IOMMU group of VF %s holds %q, want the VF alone", pci, group)
	}

	// A nested guest with that VF, and with VF 0 teamed with a virtio
	// standby on a macvtap over bond0, defined from XML and started.
	const mac, teamMAC = "52:54:00:aa:00:01", "52:54:00:aa:00:02"
	dev, err := HostdevInterfaceXML(pci, mac, 0)
	if err != nil {
		t.Fatal(err)
	}
	teamPCI, err := tb.VFAddress(ctx, "kvm1", active, 0)
	if err != nil {
		t.Fatal(err)
	}
	team, err := TeamedInterfacesXML(teamPCI, teamMAC, "bond0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.DefineNested(ctx, "kvm1", NestedGuest{Name: "vm1", Devices: dev + team}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	virsh("start", "vm1")
	t.Logf("virsh start took %v", time.Since(began).Round(100*time.Millisecond))
	if got := virsh("domstate", "vm1"); got != "running" {
		t.Fatalf("domstate after start = %q", got)
	}
	if got := run("basename $(readlink /sys/bus/pci/devices/" + pci + "/driver)"); got != "vfio-pci" {
		t.Errorf("VF %s driver while the guest runs = %q, want vfio-pci", pci, got)
	}
	if got := run("ip link show " + active); !regexp.MustCompile(`vf 1\s+link/ether ` + mac).MatchString(got) {
		t.Errorf("%s does not show VF 1 with MAC %s:\n%s", active, mac, got)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Minute)
	err = tb.WaitNested(wctx, "kvm1", "vm1")
	wcancel()
	if err != nil {
		console, _ := tb.MustExec(ctx, "kvm1", "tail -c 3000 "+NestedConsoleLog("vm1"))
		t.Fatalf("%v\nconsole of vm1:\n%s", err, console)
	}
	t.Logf("vm1 agent answered %v after virsh start", time.Since(began).Round(100*time.Millisecond))

	nrun := func(cmd string) string {
		t.Helper()
		out, err := tb.NestedMustExec(ctx, "kvm1", "vm1", cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	// ifaces lists the guest's NICs with a MAC as "name driver" lines.
	ifaces := func(mac string) string {
		t.Helper()
		return nrun(fmt.Sprintf(`for d in /sys/class/net/*; do
	[ "$(cat $d/address)" = %s ] && echo "${d##*/} $(basename $(readlink $d/device/driver))"
done; true`, mac))
	}
	// In the guest, the VF is an igbvf NIC with libvirt's MAC.
	vfNIC, driver, _ := strings.Cut(ifaces(mac), " ")
	if driver != "igbvf" {
		t.Fatalf("vm1 NIC with MAC %s: %q %q, want one igbvf NIC\n%s", mac, vfNIC, driver, nrun("ip link"))
	}
	// The teamed pair is a net_failover master (it has lower_ links)
	// over the virtio standby and the VF, which QEMU plugs in once
	// virtio_net has accepted the standby feature: wait for it.
	var failover string
	waitFor(t, 3*time.Minute, "the teamed VF in vm1", func() bool {
		failover = ""
		drivers := map[string]bool{}
		for _, l := range strings.Split(ifaces(teamMAC), "\n") {
			name, drv, _ := strings.Cut(l, " ")
			drivers[drv] = true
			if nrun("ls -d /sys/class/net/"+name+"/lower_* 2>/dev/null | wc -l") == "2" {
				failover = name
			}
		}
		return failover != "" && drivers["igbvf"] && drivers["virtio_net"]
	})

	// Through the VF and through the teamed pair, the guest and the
	// testbed's client reach each other.
	// Both are on the client's subnet: each answers ARP only for its own
	// address, so replies come back on the NIC a ping is bound to.
	addrs := map[string]string{vfNIC: "198.18.0.50", failover: "198.18.0.51"}
	nrun("echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore && echo 2 > /proc/sys/net/ipv4/conf/all/arp_announce")
	for nic, addr := range addrs {
		nrun(fmt.Sprintf("ip addr add %s/24 dev %s && ip link set %s up", addr, nic, nic))
	}
	for nic, addr := range addrs {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Minute)
		var ping string
		for {
			res, err := tb.NestedExec(pctx, "kvm1", "vm1", "ping -c 1 -W 2 -I "+nic+" "+ClientAddr().String(), 30*time.Second)
			if err == nil && res.ExitCode == 0 {
				ping = ""
				break
			}
			ping = fmt.Sprintf("%v %s %s", err, res.Stdout, res.Stderr)
			if pctx.Err() != nil {
				break
			}
			time.Sleep(time.Second)
		}
		pcancel()
		if ping != "" {
			t.Errorf("vm1 cannot ping the client %s from %s: %s", ClientAddr(), nic, ping)
		}
		if out, err := runIn(tb.ClientNetns(), "ping", "-c", "3", "-i", "0.5", "-W", "5", addr); err != nil {
			t.Errorf("client cannot ping vm1's %s at %s: %v\n%s", nic, addr, err, out)
		}
	}

	// virsh shutdown powers the guest off (ACPI, busybox acpid); libvirt
	// gives both VFs back to igbvf in the host.
	virsh("shutdown", "vm1")
	waitFor(t, 5*time.Minute, "vm1 to shut off", func() bool {
		out, err := tb.Virsh(ctx, "kvm1", "domstate", "vm1")
		return err == nil && strings.TrimSpace(out) == "shut off"
	})
	for _, p := range []string{pci, teamPCI} {
		if got := run("basename $(readlink /sys/bus/pci/devices/" + p + "/driver)"); got != "igbvf" {
			t.Errorf("VF %s driver after shutdown = %q, want igbvf", p, got)
		}
	}
	if _, err := tb.NestedExec(ctx, "kvm1", "vm1", "true", 0); err == nil {
		t.Error("exec in a shut-off nested guest succeeded")
	}

	// Bad input names the thing at fault.
	if err := tb.DefineNested(ctx, "kvm1", NestedGuest{Name: "VM;1"}); err == nil || !strings.Contains(err.Error(), `"VM;1"`) {
		t.Errorf("define with a bad name: %v", err)
	}
}

// TestNestedCallsNeedLibvirtFlavour checks, without booting anything, that
// nested-guest calls on an initramfs-flavour host say what is wrong.
func TestNestedCallsNeedLibvirtFlavour(t *testing.T) {
	tb, err := New(Config{Name: "unit"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.AddHost(HostSpec{Name: "kvm1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Virsh(context.Background(), "kvm1", "version"); !errors.Is(err, ErrNotLibvirt) {
		t.Errorf("virsh on an initramfs host: %v, want ErrNotLibvirt", err)
	}
	if err := tb.AddHost(HostSpec{Name: "kvm2", Flavour: "xen"}); err == nil || !strings.Contains(err.Error(), `flavour "xen"`) {
		t.Errorf("unknown flavour: %v", err)
	}
	// More memory than MaxMemoryMB breaks the VFs: refused, saying why.
	err = tb.AddHost(HostSpec{Name: "kvm3", Flavour: FlavourLibvirt, MemoryMB: 3072})
	if err == nil || !strings.Contains(err.Error(), "3072 MiB") || !strings.Contains(err.Error(), "PF still in reset state") {
		t.Errorf("3072 MiB: %v, want a refusal naming the memory and the igbvf failure", err)
	}
	if err := tb.AddHost(HostSpec{Name: "kvm3", Flavour: FlavourLibvirt, MemoryMB: MaxMemoryMB}); err != nil {
		t.Errorf("%d MiB: %v", MaxMemoryMB, err)
	}
}

func TestNestedGuestXML(t *testing.T) {
	dev, err := HostdevInterfaceXML("0000:01:10.2", "52:54:00:aa:00:01", 10)
	if err != nil {
		t.Fatal(err)
	}
	x, err := NestedGuest{Name: "vm1", Devices: dev}.XML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<name>vm1</name>", "<memory unit='MiB'>256</memory>",
		"<kernel>" + NestedKernel + "</kernel>", "<initrd>" + NestedInitrd + "</initrd>",
		"<source mode='bind' path='/run/vflag-l2/vm1.agent'/>", "<target type='virtio' name='vflag.agent'/>",
		"<source path='/var/log/vflag-l2/vm1.console'/>",
		"<interface type='hostdev' managed='yes'>", "<mac address='52:54:00:aa:00:01'/>",
		"<address type='pci' domain='0x0000' bus='0x01' slot='0x10' function='0x2'/>", "<tag id='10'/>",
	} {
		if !strings.Contains(x, want) {
			t.Errorf("domain XML lacks %q:\n%s", want, x)
		}
	}
	if _, err := HostdevInterfaceXML("01:10.2", "52:54:00:aa:00:01", 0); err == nil || !strings.Contains(err.Error(), `"01:10.2"`) {
		t.Errorf("short PCI address: %v", err)
	}
	if _, err := (NestedGuest{Name: "a b"}).XML(); err == nil {
		t.Error("XML of a guest named \"a b\" succeeded")
	}
}

func TestTeamedInterfacesXML(t *testing.T) {
	x, err := TeamedInterfacesXML("0000:01:10.2", "52:54:00:aa:00:02", "bond0")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<interface type='direct'>", "<source dev='bond0' mode='bridge'/>", "<model type='virtio'/>",
		"<teaming type='persistent'/>", "<alias name='ua-standby0'/>",
		"<interface type='hostdev' managed='yes'>", "<teaming type='transient' persistent='ua-standby0'/>\n    </interface>",
	} {
		if !strings.Contains(x, want) {
			t.Errorf("teamed interfaces lack %q:\n%s", want, x)
		}
	}
	if strings.Count(x, "<mac address='52:54:00:aa:00:02'/>") != 2 {
		t.Errorf("standby and VF do not share the MAC:\n%s", x)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"start":        "start",
		"--mode=acpi":  "--mode=acpi",
		"":             "''",
		"a b":          "'a b'",
		"it's":         `'it'\''s'`,
		"$(reboot)":    "'$(reboot)'",
		"/run/x/y.xml": "/run/x/y.xml",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
