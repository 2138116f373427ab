package daemon

import (
	"time"

	"github.com/vflag/vflag/api/vflagpb"
)

// emit sends an event to every subscriber that keeps up; a slow one misses
// events rather than holding up a failover. d.mu is held.
func (d *Daemon) emit(ev *vflagpb.Event) {
	if ev.AtUnixMs == 0 {
		ev.AtUnixMs = time.Now().UnixMilli()
	}
	for ch := range d.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Subscribe implements api.Backend.
func (d *Daemon) Subscribe() (<-chan *vflagpb.Event, func()) {
	ch := make(chan *vflagpb.Event, 256)
	d.mu.Lock()
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		delete(d.subs, ch)
		d.mu.Unlock()
	}
}
