package testenv

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vflag/vflag/internal/nsrun"
)

// The fabric's names. Everything lives in two namespaces per testbed:
// vflag-<tb>-fabric holds the switches and the switch side of every cable;
// vflag-<tb>-client is the client host that measures reachability.
const (
	// ToRA is the bridge every host's port 0 is cabled to.
	ToRA = "tora"
	// ToRB is the bridge every host's port 1 is cabled to.
	ToRB = "torb"
	// ClientIface is the client's interface inside its namespace.
	ClientIface = "eth0"
	// clientPort is the client's switch port on ToR-A.
	clientPort = "client"
	// netnsDir is where iproute2 and netns.NewNamed bind-mount namespaces.
	netnsDir = "/var/run/netns"
	// netnsPrefix starts every namespace a testbed creates.
	netnsPrefix = "vflag-"
)

// Subnet is the testbed's IPv4 subnet (RFC 2544 benchmarking range), used
// only inside the testbed's own namespaces.
var subnet = netip.MustParsePrefix("198.18.0.0/24")

// ClientAddr is the client's address.
func ClientAddr() netip.Addr { return subnet.Addr().Next() }

// fabric is the two top-of-rack switches and the client, in namespaces of
// their own.
type fabric struct {
	tb string
}

func (f fabric) fabricNS() string { return netnsPrefix + f.tb + "-fabric" }
func (f fabric) clientNS() string { return netnsPrefix + f.tb + "-client" }

// FabricPath is the bind-mount path of the switch namespace.
func (f fabric) fabricPath() string { return filepath.Join(netnsDir, f.fabricNS()) }

// ClientPath is the bind-mount path of the client namespace.
func (f fabric) clientPath() string { return filepath.Join(netnsDir, f.clientNS()) }

// handle returns a netlink handle inside the namespace at path.
func handleAt(path string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", path, err)
	}
	return h, nil
}

// create builds the fabric: both namespaces, both bridges, the inter-switch
// link, and the client cabled to ToR-A.
func (f fabric) create() (err error) {
	for _, name := range []string{f.fabricNS(), f.clientNS()} {
		if err := newNamedNetns(name); err != nil {
			return err
		}
	}
	h, err := handleAt(f.fabricPath())
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("fabric lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("fabric lo up: %w", err)
	}
	for _, name := range []string{ToRA, ToRB} {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("create switch %s in %s: %w", name, f.fabricNS(), err)
		}
		// STP stays off (two switches in a line have no loop), so a port
		// forwards as soon as its cable is up, like an edge port.
		if err := h.LinkSetUp(br); err != nil {
			return fmt.Errorf("switch %s up: %w", name, err)
		}
	}
	// Inter-switch link.
	if err := f.cable(h, "isl-a", ToRA, "isl-b", nil); err != nil {
		return err
	}
	isl, err := h.LinkByName("isl-b")
	if err != nil {
		return fmt.Errorf("inter-switch link: %w", err)
	}
	if err := f.attach(h, isl, ToRB); err != nil {
		return err
	}
	// The client: one end in the client namespace.
	cns, err := netns.GetFromPath(f.clientPath())
	if err != nil {
		return fmt.Errorf("open %s: %w", f.clientPath(), err)
	}
	defer cns.Close()
	if err := f.cable(h, clientPort, ToRA, ClientIface, &cns); err != nil {
		return err
	}
	ch, err := handleAt(f.clientPath())
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, name := range []string{"lo", ClientIface} {
		l, err := ch.LinkByName(name)
		if err != nil {
			return fmt.Errorf("client %s: %w", name, err)
		}
		if name == ClientIface {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: ClientAddr().AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
			if err := ch.AddrAdd(l, addr); err != nil {
				return fmt.Errorf("client address %s: %w", addr, err)
			}
		}
		if err := ch.LinkSetUp(l); err != nil {
			return fmt.Errorf("client %s up: %w", name, err)
		}
	}
	return nil
}

// cable creates a veth pair: name is attached to switch br, peer stays in
// the fabric namespace or moves to peerNS.
func (f fabric) cable(h *netlink.Handle, name, br, peer string, peerNS *netns.NsHandle) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}
	if peerNS != nil {
		veth.PeerNamespace = netlink.NsFd(*peerNS)
	}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("create cable %s-%s: %w", name, peer, err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("cable %s: %w", name, err)
	}
	return f.attach(h, l, br)
}

func (f fabric) attach(h *netlink.Handle, l netlink.Link, br string) error {
	b, err := h.LinkByName(br)
	if err != nil {
		return fmt.Errorf("switch %s: %w", br, err)
	}
	if err := h.LinkSetMaster(l, b); err != nil {
		return fmt.Errorf("attach %s to %s: %w", l.Attrs().Name, br, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("port %s up: %w", l.Attrs().Name, err)
	}
	return nil
}

// addTap creates the switch side of a host's NIC port: a tap attached to
// the port's ToR. The returned file is the tap queue QEMU gets as fd=; the
// tap is not persistent, so it disappears with the last holder of the file.
func (f fabric) addTap(name, br string) (*os.File, error) {
	tap := &netlink.Tuntap{
		LinkAttrs:  netlink.LinkAttrs{Name: name},
		Mode:       netlink.TUNTAP_MODE_TAP,
		Flags:      netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
		Queues:     1,
		NonPersist: true,
	}
	// Opening /dev/net/tun creates the tap in the caller's namespace.
	if err := nsrun.Do(f.fabricPath(), func() error { return netlink.LinkAdd(tap) }); err != nil {
		return nil, fmt.Errorf("create tap %s in %s: %w", name, f.fabricNS(), err)
	}
	if len(tap.Fds) != 1 {
		return nil, fmt.Errorf("create tap %s: got %d queues, want 1", name, len(tap.Fds))
	}
	h, err := handleAt(f.fabricPath())
	if err != nil {
		tap.Fds[0].Close()
		return nil, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err == nil {
		err = f.attach(h, l, br)
	}
	if err != nil {
		tap.Fds[0].Close()
		return nil, fmt.Errorf("cable tap %s: %w", name, err)
	}
	return tap.Fds[0], nil
}

// setPort sets the switch side of a cable administratively up or down; down
// disables the bridge port, which flushes the MACs it had learned there.
func (f fabric) setPort(name string, up bool) error {
	h, err := handleAt(f.fabricPath())
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("switch port %s: %w", name, err)
	}
	if up {
		err = h.LinkSetUp(l)
	} else {
		err = h.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set switch port %s up=%v: %w", name, up, err)
	}
	return nil
}

// destroy removes both namespaces (and with them every bridge, veth and tap
// in them). Missing namespaces are not an error.
func (f fabric) destroy() error {
	var errs []error
	for _, name := range []string{f.clientNS(), f.fabricNS()} {
		if err := deleteNamedNetns(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newNamedNetns creates a named namespace without switching the calling
// thread into it (iproute2 does the same bind-mount dance).
func newNamedNetns(name string) error {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("create network namespace %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func deleteNamedNetns(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("delete network namespace %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
