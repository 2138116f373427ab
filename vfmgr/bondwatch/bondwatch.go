// Package bondwatch is the bond watcher's socket reader: it subscribes to
// rtnetlink link messages (no polling) and hands each one to vfmgr's FSM as
// a vfmgr.LinkMsg. All decisions are the FSM's; this package only decodes.
//
// Bonding reports a new active port as RTM_NEWLINK of the bond with
// IFLA_BOND_ACTIVE_SLAVE (and IFLA_EVENT BONDING_FAILOVER, which the netlink
// library does not decode: the active slave is enough), and a port's carrier
// as RTM_NEWLINK of the port (drivers/net/bonding/bond_main.c,
// net/core/rtnetlink.c).
package bondwatch

import (
	"context"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vflag/vflag/vfmgr"
)

// Watch subscribes to link messages in the namespace ns (closed handle or
// netns.None() for the current one), sends the existing links first, then
// every change, until ctx ends or the subscription fails. The returned
// channel is closed when Watch stops; the error channel gets at most one
// error.
func Watch(ctx context.Context, ns netns.NsHandle) (<-chan vfmgr.LinkMsg, <-chan error, error) {
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	errc := make(chan error, 1)
	opts := netlink.LinkSubscribeOptions{
		ListExisting:      true,
		ReceiveBufferSize: 1 << 20,
		ErrorCallback: func(err error) {
			select {
			case errc <- fmt.Errorf("bond watcher: %w", err):
			default:
			}
		},
	}
	if ns.IsOpen() {
		opts.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
		return nil, nil, fmt.Errorf("bond watcher: subscribe to rtnetlink links: %w", err)
	}
	out := make(chan vfmgr.LinkMsg, 256)
	go func() {
		defer close(out)
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				select {
				case out <- Decode(u, time.Now()):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, errc, nil
}

// Decode turns one rtnetlink link message into a LinkMsg.
func Decode(u netlink.LinkUpdate, at time.Time) vfmgr.LinkMsg {
	a := u.Attrs()
	m := vfmgr.LinkMsg{
		Index:       a.Index,
		Name:        a.Name,
		MasterIndex: a.MasterIndex,
		Carrier:     a.RawFlags&unix.IFF_LOWER_UP != 0,
		OperUp:      a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown,
		Deleted:     u.Header.Type == unix.RTM_DELLINK,
		At:          at,
	}
	if b, ok := u.Link.(*netlink.Bond); ok {
		m.IsBond = true
		m.ActiveSlaveIndex = b.ActiveSlave
	}
	return m
}
