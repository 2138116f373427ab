package rdmamgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHost is a host's kernel as rdmamgr sees it: a sysfs tree in a
// temporary directory, laid out as the kernel lays out /sys (see doc.go),
// and the netlink side (LinkAPI) over the same devices. Add and Del change
// both, as the kernel does; every mutating call is recorded as text
// ("add rxe_bond0 rxe bond0", "del rxe0").
type fakeHost struct {
	t    *testing.T
	root string

	// mu guards everything below.
	mu    sync.Mutex
	links []RDMALink
	addrs map[string][]netip.Addr
	calls []string
	// fail makes the calls that start with a key fail with its error.
	fail map[string]error
	// onAdd lays out the sysfs side of a device Add creates; nil means
	// kernelAdd (what rdma_rxe does).
	onAdd func(h *fakeHost, name, netdev string)
	index uint32
}

var _ LinkAPI = (*fakeHost)(nil)

// errInjected is what a call a test made fail returns.
var errInjected = errors.New("injected failure")

// newHost returns an empty host with /sys/class/net and /sys/module.
func newHost(t *testing.T) *fakeHost {
	t.Helper()
	h := &fakeHost{t: t, root: t.TempDir(), addrs: map[string][]netip.Addr{}, fail: map[string]error{}}
	h.mkdir("class", "net")
	h.mkdir("class", "infiniband")
	h.mkdir("module", "ib_core")
	return h
}

// manager returns a Manager on h that waits at most 200 ms for a device.
func (h *fakeHost) manager(opts Options) *Manager {
	return &Manager{Sysfs: h.root, Links: h, Options: opts, verifyTimeout: 200 * time.Millisecond}
}

func (h *fakeHost) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) path(elem ...string) string {
	return filepath.Join(append([]string{h.root}, elem...)...)
}

func (h *fakeHost) mkdir(elem ...string) string {
	h.t.Helper()
	dir := h.path(elem...)
	h.must(os.MkdirAll(dir, 0o755))
	return dir
}

// write writes content (plus a newline) to the file at path under the root.
func (h *fakeHost) write(content string, elem ...string) {
	h.t.Helper()
	p := h.path(elem...)
	h.must(os.MkdirAll(filepath.Dir(p), 0o755))
	h.must(os.WriteFile(p, []byte(content+"\n"), 0o644))
}

func (h *fakeHost) symlink(target string, elem ...string) {
	h.t.Helper()
	p := h.path(elem...)
	h.must(os.MkdirAll(filepath.Dir(p), 0o755))
	h.must(os.Symlink(target, p))
}

// module marks a module loaded: /sys/module/NAME.
func (h *fakeHost) module(name string) { h.mkdir("module", name) }

// setAddrs gives netdev its addresses.
func (h *fakeHost) setAddrs(netdev string, addrs ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addrs[netdev] = nil
	for _, a := range addrs {
		h.addrs[netdev] = append(h.addrs[netdev], netip.MustParseAddr(a))
	}
}

// nic adds the netdev name of the PCI function pci, driven by driver:
//
//	devices/pci0000:00/PCI/net/NAME, class/net/NAME -> that
//	devices/pci0000:00/PCI/driver -> ../../../bus/pci/drivers/DRIVER
func (h *fakeHost) nic(name, pci, driver string) {
	h.t.Helper()
	h.mkdir("devices", "pci0000:00", pci, "net", name)
	h.write("0", "devices", "pci0000:00", pci, "net", name, "dev_port")
	h.symlink("../../../"+pci, "devices", "pci0000:00", pci, "net", name, "device")
	h.symlink("../../devices/pci0000:00/"+pci+"/net/"+name, "class", "net", name)
	h.mkdir("bus", "pci", "drivers", driver)
	if _, err := os.Lstat(h.path("devices", "pci0000:00", pci, "driver")); err != nil {
		h.symlink("../../../bus/pci/drivers/"+driver, "devices", "pci0000:00", pci, "driver")
	}
}

// bond adds the bond name with slaves (bonding/slaves), each a NIC of
// driver on its own PCI function.
func (h *fakeHost) bond(name, driver string, slaves ...string) {
	h.t.Helper()
	h.mkdir("devices", "virtual", "net", name, "bonding")
	h.write(strings.Join(slaves, " "), "devices", "virtual", "net", name, "bonding", "slaves")
	h.symlink("../../devices/virtual/net/"+name, "class", "net", name)
	for _, s := range slaves {
		if _, err := os.Lstat(h.path("class", "net", s)); err == nil {
			continue
		}
		h.nic(s, pciOf(s), driver)
	}
}

// bridge makes the bond name a port of a new Linux bridge br, as
// `ip link set NAME master BR` does: devices/virtual/net/BR/bridge and the
// bond's master link.
func (h *fakeHost) bridge(br, name string) {
	h.t.Helper()
	h.mkdir("devices", "virtual", "net", br, "bridge")
	h.symlink("../../devices/virtual/net/"+br, "class", "net", br)
	h.symlink("../"+br, "devices", "virtual", "net", name, "master")
}

// pciOf makes up a PCI address for the port name: pf0 -> 0000:01:00.0,
// ens1f1 -> 0000:01:00.1.
func pciOf(name string) string {
	return "0000:01:00." + name[len(name)-1:]
}

// fakePort is a port of a fake RDMA device.
type fakePort struct {
	// state is the state file, "4: ACTIVE".
	state string
	// gids are the GID table from index 0; a zero fakeGID is an empty
	// entry.
	gids []fakeGID
}

// fakeGID is a GID table entry.
type fakeGID struct {
	gid, typ, ndev string
}

// roce is the RoCE v2 GID of addr on ndev.
func roce(addr, ndev string) fakeGID {
	return fakeGID{gid: gidText(netip.MustParseAddr(addr)), typ: "RoCE v2", ndev: ndev}
}

// roce1 is the RoCE v1 GID of addr on ndev.
func roce1(addr, ndev string) fakeGID {
	g := roce(addr, ndev)
	g.typ = "IB/RoCE v1"
	return g
}

// gidText formats a as the kernel's %pI6 does.
func gidText(a netip.Addr) string {
	b := a.As16()
	var parts []string
	for i := 0; i < 16; i += 2 {
		parts = append(parts, fmt.Sprintf("%02x%02x", b[i], b[i+1]))
	}
	return strings.Join(parts, ":")
}

// active is an ACTIVE port with gids.
func active(gids ...fakeGID) fakePort { return fakePort{state: "4: ACTIVE", gids: gids} }

// ports writes the ports of the RDMA device in dir (relative to the root).
func (h *fakeHost) ports(dir []string, ports []fakePort) {
	h.t.Helper()
	for i, p := range ports {
		pd := append(slices.Clone(dir), "ports", strconv.Itoa(i+1))
		h.write(p.state, append(pd, "state")...)
		h.write("5: LinkUp", append(pd, "phys_state")...)
		// The kernel shows a table of fixed size; pad with empty entries.
		gids := append(slices.Clone(p.gids), fakeGID{}, fakeGID{})
		for j, g := range gids {
			n := strconv.Itoa(j)
			if g.gid == "" {
				h.write(gidText(netip.IPv6Unspecified()), append(pd, "gids", n)...)
				continue
			}
			h.write(g.gid, append(pd, "gids", n)...)
			h.write(g.typ, append(pd, "gid_attrs", "types", n)...)
			h.write(g.ndev, append(pd, "gid_attrs", "ndevs", n)...)
		}
	}
}

// register lists the device name over netlink.
func (h *fakeHost) register(name, guid, fw string) {
	h.index++
	h.links = append(h.links, RDMALink{Name: name, Index: h.index, NodeGUID: guid, FirmwareVersion: fw})
}

// rxe adds the Soft-RoCE device name bound to parent:
//
//	devices/virtual/infiniband/NAME/{parent,node_type,ports/1/...}
//	class/infiniband/NAME -> ../../devices/virtual/infiniband/NAME
func (h *fakeHost) rxe(name, parent string, port fakePort) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rxeLocked(name, parent, port)
}

func (h *fakeHost) rxeLocked(name, parent string, port fakePort) {
	h.t.Helper()
	dir := []string{"devices", "virtual", "infiniband", name}
	h.write(parent, append(dir, "parent")...)
	h.write("1: CA", append(dir, "node_type")...)
	h.ports(dir, []fakePort{port})
	h.symlink("../../devices/virtual/infiniband/"+name, "class", "infiniband", name)
	h.register(name, "5054:00ff:fe12:3456", "")
}

// siw adds a Soft-iWARP device bound to parent.
func (h *fakeHost) siw(name, parent string, port fakePort) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	dir := []string{"devices", "virtual", "infiniband", name}
	h.write("4: RNIC", append(dir, "node_type")...)
	h.ports(dir, []fakePort{port})
	h.symlink("../../devices/virtual/infiniband/"+name, "class", "infiniband", name)
	h.register(name, "5054:00ff:fe12:3457", "")
}

// hca adds the hardware RDMA device name on the PCI function of netdev
// (which must exist), with a device link to it:
//
//	devices/pci0000:00/PCI/infiniband/NAME/device -> ../../../PCI
func (h *fakeHost) hca(name, netdev, guid string, ports ...fakePort) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	pci := pciOf(netdev)
	dir := []string{"devices", "pci0000:00", pci, "infiniband", name}
	h.write("1: CA", append(dir, "node_type")...)
	h.symlink("../../../"+pci, append(dir, "device")...)
	h.ports(dir, ports)
	h.symlink("../../devices/pci0000:00/"+pci+"/infiniband/"+name, "class", "infiniband", name)
	h.register(name, guid, "16.35.2000")
}

// removeLocked removes the RDMA device name from sysfs and netlink.
func (h *fakeHost) removeLocked(name string) {
	target, err := os.Readlink(h.path("class", "infiniband", name))
	h.must(err)
	h.must(os.RemoveAll(filepath.Join(h.path("class", "infiniband"), target)))
	h.must(os.Remove(h.path("class", "infiniband", name)))
	h.links = slices.DeleteFunc(h.links, func(l RDMALink) bool { return l.Name == name })
}

// kernelAdd is what the kernel does on `rdma link add NAME type rxe netdev
// NETDEV`: an rxe device whose port is ACTIVE, with the default GID and a
// RoCE v2 GID for each address of NETDEV.
func kernelAdd(h *fakeHost, name, netdev string) {
	gids := []fakeGID{roce("fe80::5054:ff:fe12:3456", netdev)}
	for _, a := range h.addrs[netdev] {
		// The GID cache holds an entry once (cache.c, __ib_cache_gid_add).
		if g := roce(a.String(), netdev); !slices.Contains(gids, g) {
			gids = append(gids, g)
		}
	}
	h.rxeLocked(name, netdev, active(gids...))
}

// takeCalls returns the calls recorded so far and forgets them.
func (h *fakeHost) takeCalls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

func (h *fakeHost) record(call string) error {
	h.calls = append(h.calls, call)
	for prefix, err := range h.fail {
		if strings.HasPrefix(call, prefix) {
			return err
		}
	}
	return nil
}

func (h *fakeHost) List(ctx context.Context) ([]RDMALink, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fail["list"]; err != nil {
		return nil, err
	}
	return slices.Clone(h.links), nil
}

func (h *fakeHost) Add(ctx context.Context, name, linkType, netdev string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.record(fmt.Sprintf("add %s %s %s", name, linkType, netdev)); err != nil {
		return err
	}
	if slices.ContainsFunc(h.links, func(l RDMALink) bool { return l.Name == name }) {
		return fmt.Errorf("rdma link add %s: file exists", name)
	}
	if h.onAdd != nil {
		h.onAdd(h, name, netdev)
	} else {
		kernelAdd(h, name, netdev)
	}
	return nil
}

func (h *fakeHost) Del(ctx context.Context, name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.record("del " + name); err != nil {
		return err
	}
	if !slices.ContainsFunc(h.links, func(l RDMALink) bool { return l.Name == name }) {
		return fmt.Errorf("rdma link delete %s: no such device", name)
	}
	h.removeLocked(name)
	return nil
}

func (h *fakeHost) Addrs(ctx context.Context, netdev string) ([]netip.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fail["addrs"]; err != nil {
		return nil, err
	}
	return slices.Clone(h.addrs[netdev]), nil
}

// render is st as one comparable line.
func render(st Status) string {
	var gids []string
	for _, g := range st.GIDs {
		gids = append(gids, g.Addr.String())
	}
	dev := "none"
	if st.Device != "" {
		dev = fmt.Sprintf("%s/%d %s on %s", st.Device, st.Port, st.State, st.Netdev)
	}
	return fmt.Sprintf("%s %s: %s gids [%s] healthy=%t", st.Mode, st.Bond, dev, strings.Join(gids, " "), st.Healthy)
}
