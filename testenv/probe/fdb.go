package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// fdbReceiveBuffer is the receive buffer asked for the subscription socket
// (capped by net.core.rmem_max): a burst of FDB flushes must not overflow it,
// since an overflow (ENOBUFS) ends the subscription.
const fdbReceiveBuffer = 1 << 20

// FDBWatcher records how Linux bridges in one network namespace learn,
// move and forget the forwarding entries of some MACs.
type FDBWatcher struct {
	// Netns is the path of the namespace holding the bridges (the testbed's
	// "fabric"); "" watches the caller's namespace.
	Netns string
	// MACs are the addresses to watch; empty watches every learned entry.
	MACs []net.HardwareAddr
}

// FDBEvent is one change of a learned bridge FDB entry.
type FDBEvent struct {
	// Time is when the notification was read.
	Time time.Time
	// Bridge is the name of the bridge that holds the entry.
	Bridge string
	// Port is the name of the bridge port the MAC was learned on.
	Port string
	// MAC is the entry's address, as net.HardwareAddr.String formats it.
	MAC string
	// VLAN is the entry's VLAN on a VLAN-filtering bridge, 0 otherwise.
	VLAN int
	// Deleted reports that the entry was removed (aged out, flushed because
	// the port went down or left the bridge, or deleted by hand).
	Deleted bool
}

// FDBRecorder collects the events of a started FDBWatcher until Stop.
type FDBRecorder struct {
	// stop closes the subscription; once is its guard.
	stop chan struct{}
	once sync.Once
	// done is closed when the collecting goroutine has returned.
	done chan struct{}

	// mu guards events, err and stopping.
	mu     sync.Mutex
	events []FDBEvent
	err    error
	// stopping is set before the subscription is closed, so that the error
	// its closing causes is not reported.
	stopping bool
}

// fdbKey identifies one FDB entry.
type fdbKey struct {
	bridge int
	mac    string
	vlan   int
}

// fdbState is where an entry was last seen.
type fdbState struct {
	port    int
	deleted bool
}

// Start subscribes to the bridge FDB notifications of the namespace, lists
// the entries that already exist (they are recorded at the time of the
// listing) and records until ctx is done or Stop is called. Entries of the
// bridge device itself (local or NTF_SELF) and permanent or static ones are
// ignored: only entries a bridge learned on a port are recorded. A
// notification that repeats the known state of an entry is not recorded
// again.
func (w FDBWatcher) Start(ctx context.Context) (*FDBRecorder, error) {
	ns := netns.None()
	if w.Netns != "" {
		var err error
		ns, err = netns.GetFromPath(w.Netns)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", w.Netns, err)
		}
		defer ns.Close()
	}
	handle, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink handle in %s: %w", nsLabel(w.Netns), err)
	}

	rec := &FDBRecorder{stop: make(chan struct{}), done: make(chan struct{})}
	updates := make(chan netlink.NeighUpdate, 256)
	err = netlink.NeighSubscribeWithOptions(updates, rec.stop, netlink.NeighSubscribeOptions{
		Namespace:         &ns,
		ErrorCallback:     rec.fail,
		ListExisting:      true,
		ReceiveBufferSize: fdbReceiveBuffer,
	})
	if err != nil {
		handle.Close()
		return nil, fmt.Errorf("subscribe to FDB updates in %s: %w", nsLabel(w.Netns), err)
	}

	tr := &fdbTracker{
		macs: slices.Clone(w.MACs),
		names: &linkNames{lookup: func(index int) (string, error) {
			l, err := handle.LinkByIndex(index)
			if err != nil {
				return "", err
			}
			return l.Attrs().Name, nil
		}},
		known: make(map[fdbKey]fdbState),
	}
	go func() {
		defer close(rec.done)
		defer handle.Close()
		// The subscription closes updates once its socket is closed, and
		// blocks until each update is taken: read until it is closed.
		for u := range updates {
			if ev, ok := tr.observe(u, time.Now()); ok {
				rec.add(ev)
			}
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			rec.Stop()
		case <-rec.done:
		}
	}()
	return rec, nil
}

// fdbTracker turns FDB notifications into events: it keeps the watched
// ones and drops those that repeat an entry's known state. It is used by
// one goroutine only.
type fdbTracker struct {
	macs  []net.HardwareAddr
	names *linkNames
	known map[fdbKey]fdbState
}

// observe returns the event a notification read at the given time makes,
// if any.
func (t *fdbTracker) observe(u netlink.NeighUpdate, at time.Time) (FDBEvent, bool) {
	if !watched(u.Neigh, t.macs) {
		return FDBEvent{}, false
	}
	key, st, ok := fdbEntry(u)
	if !ok {
		return FDBEvent{}, false
	}
	if prev, seen := t.known[key]; seen && prev == st {
		return FDBEvent{}, false
	}
	t.known[key] = st
	return FDBEvent{
		Time:    at,
		Bridge:  t.names.name(key.bridge),
		Port:    t.names.name(st.port),
		MAC:     key.mac,
		VLAN:    key.vlan,
		Deleted: st.deleted,
	}, true
}

// fdbEntry decodes a learned FDB entry on a bridge port from a
// notification; ok is false for anything else (neighbour entries of other
// families, entries of the bridge device itself, NTF_SELF entries of a
// port's own address lists, permanent and static entries). See the
// kernel's net/bridge/br_fdb.c fdb_fill_info for how the fields are set.
func fdbEntry(u netlink.NeighUpdate) (key fdbKey, st fdbState, ok bool) {
	n := u.Neigh
	switch {
	case n.Family != unix.AF_BRIDGE,
		n.Flags&netlink.NTF_SELF != 0,
		n.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0,
		n.MasterIndex == 0,
		n.LinkIndex == 0,
		n.LinkIndex == n.MasterIndex,
		len(n.HardwareAddr) == 0:
		return fdbKey{}, fdbState{}, false
	}
	switch u.Type {
	case unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH:
	default:
		return fdbKey{}, fdbState{}, false
	}
	key = fdbKey{bridge: n.MasterIndex, mac: n.HardwareAddr.String(), vlan: n.Vlan}
	st = fdbState{port: n.LinkIndex, deleted: u.Type == unix.RTM_DELNEIGH}
	return key, st, true
}

// watched reports whether the entry's MAC is one of macs (all if empty).
func watched(n netlink.Neigh, macs []net.HardwareAddr) bool {
	if len(macs) == 0 {
		return true
	}
	for _, m := range macs {
		if bytes.Equal(m, n.HardwareAddr) {
			return true
		}
	}
	return false
}

// linkNames caches interface names by index. An index is looked up once,
// the first time an entry names it: a port that is deleted later (which
// flushes its entries) keeps its name. It is used by one goroutine only.
type linkNames struct {
	lookup func(index int) (string, error)
	cache  map[int]string
}

// name returns the interface's name, or "if<index>" if it is gone.
func (c *linkNames) name(index int) string {
	if n, ok := c.cache[index]; ok {
		return n
	}
	n, err := c.lookup(index)
	if err != nil {
		// Not cached: the link may come back under this index only if
		// it was never gone, so a later lookup can still succeed.
		return "if" + strconv.Itoa(index)
	}
	if c.cache == nil {
		c.cache = make(map[int]string)
	}
	c.cache[index] = n
	return n
}

// add records one event.
func (r *FDBRecorder) add(ev FDBEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// fail records an error of the subscription. ErrDumpInterrupted only means
// the listing of existing entries may be incomplete; later notifications
// still arrive.
func (r *FDBRecorder) fail(err error) {
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping || r.err != nil {
		return
	}
	r.err = err
}

// Events returns a copy of the events recorded so far, in the order they
// were read.
func (r *FDBRecorder) Events() []FDBEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]FDBEvent, len(r.events))
	copy(out, r.events)
	return out
}

// Stop ends the recording and waits for it to finish. It returns the error
// that ended the subscription early, if any (then events after it are
// missing, for example after the socket's buffer overflowed). It is safe
// to call more than once.
func (r *FDBRecorder) Stop() error {
	r.once.Do(func() {
		r.mu.Lock()
		r.stopping = true
		r.mu.Unlock()
		close(r.stop)
	})
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return fmt.Errorf("watch bridge FDB: %w", r.err)
	}
	return nil
}
