// Package nsguest models, for the testbed's namespace VMs, what a guest OS
// does when a NIC is hot-plugged: whenever an interface of the configured
// name appears (or comes back), it is brought up and given the guest's
// addresses, as udev plus systemd-networkd or NetworkManager would for a
// [Match] on the interface. It runs inside the VM's network namespace
// (`ip netns exec VM vflag-guest hotplug ...`), so vflagd never configures
// guest addresses itself: it only hands VFs over, as it would to a real VM.
package nsguest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/vflag/vflag/internal/netlinksafe"
)

// Guest is the guest OS's network configuration for one interface.
type Guest struct {
	// Ifname is the interface to configure ("eth0").
	Ifname string
	// Addrs are its addresses with prefix length.
	Addrs []netip.Prefix
	// Log reports each (re)configuration.
	Log *slog.Logger
}

// Run configures the interface now if it exists, then again every time a
// link of that name appears, until ctx ends.
func (g Guest) Run(ctx context.Context) error {
	if g.Ifname == "" || len(g.Addrs) == 0 {
		return errors.New("hotplug needs an interface name and at least one address")
	}
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	errs := make(chan error, 1)
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	}); err != nil {
		return fmt.Errorf("subscribe to link updates: %w", err)
	}
	if l, err := netlink.LinkByName(g.Ifname); err == nil {
		if err := g.configure(l); err != nil {
			g.Log.Warn("configure", "iface", g.Ifname, "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return fmt.Errorf("link updates: %w", err)
		case u := <-updates:
			if u.Attrs().Name != g.Ifname || u.Header.Type != syscall.RTM_NEWLINK {
				continue
			}
			if err := g.configure(u.Link); err != nil {
				g.Log.Warn("configure", "iface", g.Ifname, "err", err)
			}
		}
	}
}

// configure brings the link up and adds the missing addresses; a link
// that is already up with every address is left alone.
func (g Guest) configure(l netlink.Link) error {
	have := map[netip.Prefix]bool{}
	addrs, err := netlinksafe.New(nil).AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", g.Ifname, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ones, _ := a.Mask.Size()
			have[netip.PrefixFrom(ip.Unmap(), ones)] = true
		}
	}
	changed := false
	if l.Attrs().Flags&1 == 0 { // IFF_UP
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("bring %s up: %w", g.Ifname, err)
		}
		changed = true
	}
	for _, p := range g.Addrs {
		if have[p] {
			continue
		}
		a, err := netlink.ParseAddr(p.String())
		if err != nil {
			return fmt.Errorf("address %s: %w", p, err)
		}
		if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("add %s to %s: %w", p, g.Ifname, err)
		}
		changed = true
	}
	if changed {
		g.Log.Info("hot-plugged interface configured", "iface", g.Ifname, "mac", l.Attrs().HardwareAddr.String(), "addrs", fmt.Sprint(g.Addrs))
	}
	return nil
}
