package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
)

// rdmaSettle is how long after a bond's active port changed vflagd looks
// at its RDMA device: the RDMA core updates GID tables from a workqueue.
const rdmaSettle = 300 * time.Millisecond

// rdmaWatch remembers, per bond, the GID index of each of its addresses
// as last seen, so that a check after a failover can tell whether open
// RDMA connections kept their source GID (see rdmamgr.ErrGIDRenumber).
type rdmaWatch struct {
	// mu guards gids.
	mu   sync.Mutex
	gids map[string]map[netip.Addr]int
	// checks tracks checks in flight, for Close.
	checks sync.WaitGroup
}

// gidIndexes maps each address GID of st to its index.
func gidIndexes(st rdmamgr.Status) map[netip.Addr]int {
	m := map[netip.Addr]int{}
	for _, g := range st.GIDs {
		if g.Addr.IsValid() && !g.Addr.IsLinkLocalUnicast() {
			m[g.Addr] = g.Index
		}
	}
	return m
}

// remember records st's GIDs for bond and returns the addresses whose
// index changed since the last time (in address order).
func (w *rdmaWatch) remember(bond string, st rdmamgr.Status) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gids == nil {
		w.gids = map[string]map[netip.Addr]int{}
	}
	now := gidIndexes(st)
	var moved []string
	for a, i := range w.gids[bond] {
		if j, ok := now[a]; !ok || j != i {
			moved = append(moved, fmt.Sprintf("%s (GID index %d → %s)", a, i, indexOr(now, a)))
		}
	}
	slices.Sort(moved)
	w.gids[bond] = now
	return moved
}

func indexOr(m map[netip.Addr]int, a netip.Addr) string {
	if i, ok := m[a]; ok {
		return fmt.Sprint(i)
	}
	return "gone"
}

// bondConfig returns the configuration of bond.
func (d *Daemon) bondConfig(bond string) (BondConfig, bool) {
	for _, b := range d.opts.Bonds {
		if b.Name == bond {
			return b, true
		}
	}
	return BondConfig{}, false
}

// checkRDMAAfter looks at bond's RDMA once the bond's active port has
// changed: an "rdma" event with the device's state and health, and
// whether the bond's GIDs kept their indexes (when they did not, every
// open RDMA connection on the device has failed). It runs in the
// background and does not hold d.mu.
func (d *Daemon) checkRDMAAfter(ev vfmgr.Event) {
	b, ok := d.bondConfig(ev.Bond)
	if !ok || d.opts.RDMA == nil || b.RDMA == "" || b.RDMA == rdmamgr.ModeOff || ev.Kind != vfmgr.ActiveChanged {
		return
	}
	d.rdma.checks.Add(1)
	go func() {
		defer d.rdma.checks.Done()
		time.Sleep(rdmaSettle)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st := d.opts.RDMA.Check(ctx, b.Name, b.RDMA)
		moved := d.rdma.remember(b.Name, st)
		d.opts.Metrics.rdmaChecked(b.Name, st.Healthy, len(moved) > 0)
		msg := fmt.Sprintf("%s port %d %s on %s, GIDs kept their indexes", orNone(st.Device), st.Port, st.State, orNone(st.Netdev))
		if len(moved) > 0 {
			msg = fmt.Sprintf("%s port %d %s on %s: GIDs renumbered, open RDMA connections failed: %s",
				orNone(st.Device), st.Port, st.State, orNone(st.Netdev), strings.Join(moved, ", "))
		}
		if !st.Healthy {
			msg += "; problems: " + strings.Join(st.Problems, "; ")
		}
		log := d.log.Info
		if len(moved) > 0 || !st.Healthy {
			log = d.log.Warn
		}
		log("RDMA after failover", "bond", b.Name, "device", st.Device, "state", string(st.State), "healthy", st.Healthy, "renumbered", len(moved))
		d.emit(&vflagpb.Event{Kind: "rdma", Bond: b.Name, Pf: ev.PF, Message: msg})
	}()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
