package doctor_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vflag/vflag/doctor"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
)

// host is a fixture: a host's file system in a temporary directory, laid
// out as the kernel and Debian lay it out (/sys, /proc, /lib/modules,
// /etc), and fakes of the other seams that answer from the same tables.
// newHost builds a host on which everything is in order for
// baseConfig; tests then break one thing each.
type host struct {
	t    *testing.T
	root string
	nic  *fakeNIC
	run  fakeRunner
	vd   *fakeVflagd
	rdma *fakeRDMA
	// preflight is the Doctor's Preflighter (nil: none).
	preflight doctor.Preflighter
}

// baseConfig manages bond0 over pf0/pf1 (igb), 4 VFs each.
const baseConfig = `bonds:
  - name: bond0
    pfs: [pf0, pf1]
    vfs_per_pf: 4
`

// configPath is where the fixture's configuration lives (below the root).
const configPath = "/etc/vflag/vflag.yaml"

func newHost(t *testing.T) *host {
	t.Helper()
	h := &host{
		t: t, root: t.TempDir(),
		nic:  &fakeNIC{info: map[string]doctor.DriverInfo{}, flags: map[string]map[string]bool{}, eswitch: map[string]string{}, vfs: map[string][]vfmgr.VF{}},
		run:  fakeRunner{"libvirtd": "libvirtd (libvirt) 11.3.0\n"},
		vd:   &fakeVflagd{state: doctor.DaemonState{Bonds: []doctor.DaemonBond{{Name: "bond0", Active: "pf0"}}}},
		rdma: &fakeRDMA{addrs: map[string][]netip.Addr{}},
	}
	h.write(baseConfig, configPath)
	h.kernel("6.12.107+deb12-amd64", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt", "GenuineIntel")
	h.mkdir("/sys/class/iommu/dmar0")
	for i := range 3 {
		h.mkdir("/sys/kernel/iommu_groups/" + strconv.Itoa(i) + "/devices")
	}
	h.loaded("vfio_pci")
	h.mkdir("/sys/class/net")
	h.mkdir("/sys/class/infiniband")
	h.write("#!/bin/sh\n", doctor.HookPath)
	h.must(os.Chmod(h.path(doctor.HookPath), 0o755))
	h.pf("pf0", "0000:01:00.0", "igb", 7, 4)
	h.pf("pf1", "0000:01:00.1", "igb", 7, 4)
	h.bond("bond0", "active-backup 1", 100, "pf0", "pf1")
	h.useVF("pf0", 0, "vm1", "52:54:00:00:00:01")
	return h
}

// check runs the doctor on h with the fixture's configuration.
func (h *host) check() doctor.Report {
	h.t.Helper()
	return h.doctor().Check(context.Background(), doctor.Options{Config: configPath})
}

func (h *host) doctor() *doctor.Doctor {
	return &doctor.Doctor{Root: h.root, NIC: h.nic, Run: h.run, Vflagd: h.vd, RDMA: h.rdma, Preflight: h.preflight}
}

func (h *host) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) path(p string) string { return filepath.Join(h.root, p) }

func (h *host) mkdir(p string) {
	h.t.Helper()
	h.must(os.MkdirAll(h.path(p), 0o755))
}

// write writes content to the host path p.
func (h *host) write(content, p string) {
	h.t.Helper()
	h.must(os.MkdirAll(filepath.Dir(h.path(p)), 0o755))
	h.must(os.WriteFile(h.path(p), []byte(content), 0o644))
}

func (h *host) remove(p string) {
	h.t.Helper()
	h.must(os.RemoveAll(h.path(p)))
}

func (h *host) symlink(target, p string) {
	h.t.Helper()
	h.must(os.MkdirAll(filepath.Dir(h.path(p)), 0o755))
	h.must(os.Symlink(target, h.path(p)))
}

// kernel sets the release, the command line and the CPU vendor.
func (h *host) kernel(release, cmdline, vendor string) {
	h.write(release+"\n", "/proc/sys/kernel/osrelease")
	h.write(cmdline+"\n", "/proc/cmdline")
	h.write("processor\t: 0\nvendor_id\t: "+vendor+"\ncpu family\t: 6\n", "/proc/cpuinfo")
}

// loaded marks the module name loaded: /sys/module/NAME/initstate.
func (h *host) loaded(name string) { h.write("live\n", "/sys/module/"+name+"/initstate") }

// available lists the module (its file name, "vfio-pci") in modules.dep
// of the running kernel.
func (h *host) available(file string) {
	rel, err := os.ReadFile(h.path("/proc/sys/kernel/osrelease"))
	h.must(err)
	dep := h.path("/lib/modules/" + strings.TrimSpace(string(rel)) + "/modules.dep")
	h.must(os.MkdirAll(filepath.Dir(dep), 0o755))
	f, err := os.OpenFile(dep, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	h.must(err)
	_, err = fmt.Fprintf(f, "kernel/drivers/x/%s.ko.xz: kernel/drivers/x/dep.ko.xz\n", file)
	h.must(err)
	h.must(f.Close())
}

// pf adds the PCI function pci with netdev name, bound to driver, with
// sriov_totalvfs total (none when negative) and sriov_numvfs num VFs, each
// with default settings (spoofchk on, trust off, no MAC):
//
//	/sys/devices/pci0000:00/PCI/{driver,sriov_totalvfs,sriov_numvfs,net/NAME}
//	/sys/class/net/NAME -> ../../devices/pci0000:00/PCI/net/NAME
func (h *host) pf(name, pci, driver string, total, num int) {
	dev := "/sys/devices/pci0000:00/" + pci
	h.mkdir(dev + "/net/" + name)
	h.symlink("../../../"+pci, dev+"/net/"+name+"/device")
	h.symlink("../../devices/pci0000:00/"+pci+"/net/"+name, "/sys/class/net/"+name)
	h.mkdir("/sys/bus/pci/drivers/" + driver)
	h.symlink("../../../bus/pci/drivers/"+driver, dev+"/driver")
	if total >= 0 {
		h.write(strconv.Itoa(total)+"\n", dev+"/sriov_totalvfs")
		h.write(strconv.Itoa(num)+"\n", dev+"/sriov_numvfs")
	}
	h.nic.info[name] = doctor.DriverInfo{Driver: driver, Version: "6.12.107+deb12-amd64", Firmware: "1.61, 0x8000a2b4", BusInfo: pci}
	var vfs []vfmgr.VF
	for i := range num {
		vfs = append(vfs, vfmgr.VF{PF: name, Index: i, PCI: fmt.Sprintf("%s-vf%d", pci, i), SpoofChk: true})
	}
	h.nic.vfs[name] = vfs
}

// bond adds the bond name in mode ("active-backup 1") with miimon and
// slaves, the first one active.
func (h *host) bond(name, mode string, miimon int, slaves ...string) {
	dir := "/sys/devices/virtual/net/" + name
	h.write(mode+"\n", dir+"/bonding/mode")
	h.write(strconv.Itoa(miimon)+"\n", dir+"/bonding/miimon")
	h.write("0\n", dir+"/bonding/arp_interval")
	h.write("\n", dir+"/bonding/arp_ip_target")
	h.write(strings.Join(slaves, " ")+"\n", dir+"/bonding/slaves")
	active := ""
	if len(slaves) > 0 {
		active = slaves[0]
	}
	h.write(active+"\n", dir+"/bonding/active_slave")
	h.symlink("../../devices/virtual/net/"+name, "/sys/class/net/"+name)
}

// bridge makes the bond a port of the Linux bridge br (the usual KVM host
// layout: the host's address on br0 over bond0):
//
//	/sys/devices/virtual/net/BR/bridge/, /sys/class/net/BR -> ...
//	/sys/devices/virtual/net/BOND/master -> ../BR
func (h *host) bridge(br, bond string) {
	h.mkdir("/sys/devices/virtual/net/" + br + "/bridge")
	h.symlink("../../devices/virtual/net/"+br, "/sys/class/net/"+br)
	h.symlink("../"+br, "/sys/devices/virtual/net/"+bond+"/master")
}

// bondAttr sets the bonding attribute attr of bond0.
func (h *host) bondAttr(attr, value string) {
	h.write(value+"\n", "/sys/devices/virtual/net/bond0/bonding/"+attr)
}

// useVF gives VF idx of pf to vm: a MAC on the VF, and vflagd's table.
func (h *host) useVF(pf string, idx int, vm, mac string) {
	h.t.Helper()
	m, err := net.ParseMAC(mac)
	h.must(err)
	h.nic.vfs[pf][idx].MAC = m
	h.vd.state.InUse = append(h.vd.state.InUse, doctor.InUseVF{VF: vfmgr.VFRef{PF: pf, Index: idx}, VM: vm})
}

// rxe adds the Soft-RoCE device name bound to netdev, port 1 in state
// ("4: ACTIVE") with a RoCE v2 GID for each of addrs (which the netdev
// gets too), as rdma_rxe lays it out in sysfs.
func (h *host) rxe(name, netdev, state string, addrs ...string) {
	dir := "/sys/class/infiniband/" + name
	h.write(netdev+"\n", dir+"/parent")
	h.write("1: CA\n", dir+"/node_type")
	h.write(state+"\n", dir+"/ports/1/state")
	for i, a := range addrs {
		ip := netip.MustParseAddr(a)
		h.rdma.addrs[netdev] = append(h.rdma.addrs[netdev], ip)
		n := strconv.Itoa(i + 1)
		b := netip.AddrFrom16(ip.As16()).As16()
		if ip.Is4() {
			b = netip.AddrFrom16(netip.MustParseAddr("::ffff:" + a).As16()).As16()
		}
		var parts []string
		for j := 0; j < 16; j += 2 {
			parts = append(parts, fmt.Sprintf("%02x%02x", b[j], b[j+1]))
		}
		h.write(strings.Join(parts, ":")+"\n", dir+"/ports/1/gids/"+n)
		h.write("RoCE v2\n", dir+"/ports/1/gid_attrs/types/"+n)
		h.write(netdev+"\n", dir+"/ports/1/gid_attrs/ndevs/"+n)
	}
	h.rdma.links = append(h.rdma.links, rdmamgr.RDMALink{Name: name, Index: uint32(len(h.rdma.links))})
}

// fakeNIC answers from tables; a name in fail makes its calls fail.
type fakeNIC struct {
	info    map[string]doctor.DriverInfo
	flags   map[string]map[string]bool
	eswitch map[string]string // PCI -> mode
	vfs     map[string][]vfmgr.VF
	fail    map[string]error
}

var _ doctor.NIC = (*fakeNIC)(nil)

func (n *fakeNIC) DriverInfo(_ context.Context, ifname string) (doctor.DriverInfo, error) {
	if err := n.fail[ifname]; err != nil {
		return doctor.DriverInfo{}, err
	}
	i, ok := n.info[ifname]
	if !ok {
		return doctor.DriverInfo{}, fmt.Errorf("ethtool -i %s: no such device", ifname)
	}
	return i, nil
}

func (n *fakeNIC) PrivFlags(_ context.Context, ifname string) (map[string]bool, error) {
	if err := n.fail[ifname]; err != nil {
		return nil, err
	}
	return n.flags[ifname], nil
}

func (n *fakeNIC) EswitchMode(_ context.Context, pci string) (string, error) {
	m, ok := n.eswitch[pci]
	if !ok {
		return "", fmt.Errorf("devlink dev show pci/%s: operation not supported", pci)
	}
	return m, nil
}

func (n *fakeNIC) VFs(_ context.Context, pf string) ([]vfmgr.VF, error) {
	if err := n.fail[pf]; err != nil {
		return nil, err
	}
	return n.vfs[pf], nil
}

// fakeRunner prints the output it has for a program; others are not
// installed.
type fakeRunner map[string]string

func (r fakeRunner) Run(_ context.Context, name string, _ ...string) (string, error) {
	out, ok := r[name]
	if !ok {
		return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
	}
	return out, nil
}

// fakeVflagd answers with state, or err.
type fakeVflagd struct {
	state doctor.DaemonState
	err   error
	// asked is the socket it was last asked on.
	asked string
}

func (v *fakeVflagd) Probe(_ context.Context, socket string) (doctor.DaemonState, error) {
	v.asked = socket
	return v.state, v.err
}

// fakeRDMA is rdmamgr's netlink side: RDMA devices and addresses. Add and
// Del fail: doctor must not change anything.
type fakeRDMA struct {
	links []rdmamgr.RDMALink
	addrs map[string][]netip.Addr
}

var errChanged = errors.New("doctor tried to change the host")

func (f *fakeRDMA) List(context.Context) ([]rdmamgr.RDMALink, error) { return f.links, nil }

func (f *fakeRDMA) Add(context.Context, string, string, string) error { return errChanged }

func (f *fakeRDMA) Del(context.Context, string) error { return errChanged }

func (f *fakeRDMA) Addrs(_ context.Context, netdev string) ([]netip.Addr, error) {
	return f.addrs[netdev], nil
}

// find returns the one finding of check on subject, failing the test when
// there is none or more than one.
func find(t *testing.T, r doctor.Report, check, subject string) plugin.Finding {
	t.Helper()
	var got []plugin.Finding
	for _, f := range r.Findings() {
		if f.Check == check && f.Subject == subject {
			got = append(got, f)
		}
	}
	if len(got) != 1 {
		t.Fatalf("want one %s finding on %q, got %d; all findings:\n%s", check, subject, len(got), render(r))
	}
	return got[0]
}

// has reports whether r has a finding of check on subject.
func has(r doctor.Report, check, subject string) bool {
	for _, f := range r.Findings() {
		if f.Check == check && f.Subject == subject {
			return true
		}
	}
	return false
}

// render is r as text, for failure messages.
func render(r doctor.Report) string {
	var b strings.Builder
	_ = r.WriteText(&b)
	return b.String()
}

// want checks a finding's severity and that its detail and fix contain
// the given texts ("" for a fix means: no fix).
func want(t *testing.T, f plugin.Finding, sev plugin.Severity, detail, fix string) {
	t.Helper()
	if f.Severity != sev {
		t.Errorf("%s %s: severity %s, want %s (%s)", f.Check, f.Subject, f.Severity, sev, f.Detail)
	}
	if !strings.Contains(f.Detail, detail) {
		t.Errorf("%s %s: detail %q does not say %q", f.Check, f.Subject, f.Detail, detail)
	}
	switch {
	case fix == "" && f.Fix != "":
		t.Errorf("%s %s: fix %q, want none", f.Check, f.Subject, f.Fix)
	case !strings.Contains(f.Fix, fix):
		t.Errorf("%s %s: fix %q does not say %q", f.Check, f.Subject, f.Fix, fix)
	}
}
