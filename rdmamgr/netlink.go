package rdmamgr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vflag/vflag/internal/netlinksafe"
)

// RDMALink is an RDMA device as rdma netlink lists it (`rdma dev show`).
type RDMALink struct {
	// Name is the device name.
	Name string
	// Index is the kernel's device index.
	Index uint32
	// NodeGUID is the node GUID, "0002:c903:0000:abcd".
	NodeGUID string
	// FirmwareVersion is the firmware version, "" for software devices.
	FirmwareVersion string
}

// LinkAPI is what Manager needs from netlink: the RDMA devices (rdma
// netlink, as `rdma dev` and `rdma link` use it) and a netdev's addresses
// (rtnetlink). Unit tests fake it; Netlink is the real one.
type LinkAPI interface {
	// List lists the RDMA devices.
	List(ctx context.Context) ([]RDMALink, error)
	// Add creates the software RDMA device name of linkType ("rxe") bound
	// to netdev: `rdma link add NAME type TYPE netdev NETDEV`.
	Add(ctx context.Context, name, linkType, netdev string) error
	// Del deletes the software RDMA device name: `rdma link delete NAME`.
	Del(ctx context.Context, name string) error
	// Addrs returns the addresses of netdev that the kernel puts into a
	// RoCE GID table: IPv4 and IPv6, without tentative (DAD not done) or
	// DAD-failed ones.
	Addrs(ctx context.Context, netdev string) ([]netip.Addr, error)
}

var _ LinkAPI = (*Netlink)(nil)

// Netlink is LinkAPI over the kernel's netlink sockets. It is kept thin: it
// converts, names the call in errors and retries interrupted dumps. No unit
// test runs it (rdma netlink needs a kernel with ib_core, which CI hosts do
// not have); the testbed tier exercises it on the guest's rdma_rxe.
type Netlink struct {
	// Handle is the netlink handle to use; nil means netlink's default
	// handle (the calling thread's network namespace).
	Handle *netlink.Handle
}

func (n *Netlink) handle() *netlink.Handle {
	if n.Handle == nil {
		// The zero Handle is netlink's default handle.
		return &netlink.Handle{}
	}
	return n.Handle
}

// List lists the RDMA devices (RDMA_NLDEV_CMD_GET dump), retrying an
// interrupted dump. A kernel without the RDMA core gives an error matching
// ErrNoRDMA.
func (n *Netlink) List(ctx context.Context) ([]RDMALink, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	links, err := netlinksafe.Retry("rdma dev show", n.handle().RdmaLinkList)
	if err != nil {
		return nil, noRDMA(err)
	}
	out := make([]RDMALink, 0, len(links))
	for _, l := range links {
		out = append(out, RDMALink{
			Name:            l.Attrs.Name,
			Index:           l.Attrs.Index,
			NodeGUID:        guidFromNetlink(l.Attrs.NodeGuid),
			FirmwareVersion: l.Attrs.FirmwareVersion,
		})
	}
	return out, nil
}

// Add runs `rdma link add NAME type TYPE netdev NETDEV`.
func (n *Netlink) Add(ctx context.Context, name, linkType, netdev string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := n.handle().RdmaLinkAdd(name, linkType, netdev); err != nil {
		return fmt.Errorf("rdma link add %s type %s netdev %s: %w", name, linkType, netdev, noRDMA(err))
	}
	return nil
}

// Del runs `rdma link delete NAME`. RdmaLinkDel looks the device up with a
// dump first; an interrupted look-up is retried (nothing was deleted yet).
func (n *Netlink) Del(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := netlinksafe.Retry("rdma link delete "+name, func() (struct{}, error) {
		return struct{}{}, n.handle().RdmaLinkDel(name)
	})
	return noRDMA(err)
}

// Addrs lists the addresses of netdev (RTM_GETADDR dump through
// netlinksafe).
func (n *Netlink) Addrs(ctx context.Context, netdev string) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nl := netlinksafe.New(n.Handle)
	link, err := nl.LinkByName(netdev)
	if err != nil {
		return nil, err
	}
	addrs, err := nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		// The GID table follows addresses once usable: an IPv6 address
		// is announced (inet6addr notifier, NETDEV_UP) after DAD.
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 || a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// noRDMA marks the error of a kernel without the RDMA core: opening a
// NETLINK_RDMA socket fails with EPROTONOSUPPORT when ib_core is not
// loaded (it registers the family, drivers/infiniband/core/netlink.c).
func noRDMA(err error) error {
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		return fmt.Errorf("%w (NETLINK_RDMA: %w): load it: modprobe rdma_rxe (or the NIC's RDMA driver)", ErrNoRDMA, err)
	}
	return err
}

// guidFromNetlink turns the node GUID as vishvananda/netlink v1.3.1 gives
// it into the kernel's notation. The kernel sends the GUID as a host-order
// number (nldev.c: be64_to_cpu(node_guid)); the library writes that number
// out little-endian as a MAC-style string, so the bytes come reversed:
// "cd:ab:00:00:03:c9:02:00" is GUID 0002:c903:0000:abcd. Anything that is
// not eight colon-separated bytes is returned unchanged.
func guidFromNetlink(s string) string {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 8 {
		return s
	}
	var b strings.Builder
	for i := 7; i >= 0; i-- {
		fmt.Fprintf(&b, "%02x", mac[i])
		if i%2 == 0 && i > 0 {
			b.WriteByte(':')
		}
	}
	return b.String()
}
