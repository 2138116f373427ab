package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/virt"
)

var _ virt.Handler = (*Daemon)(nil)

// DomainGrace is how young an allocation may be and still be kept when a
// reconciliation with libvirt does not list its domain as running: the
// hook reports a VF at prepare and start, before libvirt counts the
// domain as running.
const DomainGrace = 30 * time.Second

// DomainGone implements virt.Handler: libvirt says the domain stopped, so
// whatever vflagd still holds for it is released (the release hook did
// that already unless vflagd was down or the hook failed).
func (d *Daemon) DomainGone(ctx context.Context, uuid, name, why string) {
	d.releaseDomains(ctx, fmt.Sprintf("domain %s %s", name, why), func(a vfmgr.Allocation) bool {
		return a.DomainUUID == uuid
	})
}

// Connected implements virt.Handler: after a (re)connection to libvirtd,
// the VFs of domains that are no longer running are released — the
// domains that stopped while vflagd or libvirtd was down.
func (d *Daemon) Connected(ctx context.Context, running map[string]string) {
	now := time.Now()
	d.releaseDomains(ctx, "domain no longer running (reconciled with libvirt)", func(a vfmgr.Allocation) bool {
		_, up := running[a.DomainUUID]
		return a.DomainUUID != "" && !up && now.Sub(a.Since) > DomainGrace
	})
	d.mu.Lock()
	d.publishPools()
	d.mu.Unlock()
}

// releaseDomains releases every allocation match selects.
func (d *Daemon) releaseDomains(ctx context.Context, why string, match func(vfmgr.Allocation) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		return
	}
	n := 0
	for _, a := range d.state.Allocations() {
		if !match(a) {
			continue
		}
		if err := d.release(ctx, a); err != nil {
			d.log.Error("release the VF of a stopped domain", "vm", a.VM, "vf", a.VF.String(), "err", err)
			continue
		}
		n++
		d.log.Info("VF released", "vm", a.VM, "mac", a.MAC.String(), "vf", a.VF.String(), "why", why)
		d.emit(&vflagpb.Event{Kind: "detach", Bond: a.Bond, Pf: a.VF.PF, Vm: a.VM, Mac: a.MAC.String(), Message: why})
	}
	if n > 0 {
		d.changed()
	}
}

// release resets a's VF and forgets a. d.mu is held.
func (d *Daemon) release(ctx context.Context, a vfmgr.Allocation) error {
	if err := d.opts.Kernel.ResetVF(ctx, a.VF.PF, a.VF.Index); err != nil {
		return err // keep the allocation: the VF still carries the VM's MAC
	}
	if err := d.opts.Store.Delete(a.Key()); err != nil {
		return err
	}
	_, err := d.state.Release(a.Key())
	return err
}

// changed publishes what follows from the state: the gauges and the pool
// networks. d.mu is held.
func (d *Daemon) changed() {
	d.publishGauges()
	d.publishPools()
}

// publishPools tells the libvirt side which VFs each bond's pool network
// lists: the free VFs of its active PF, so that the VF libvirt picks for
// a pool interface is one vflagd would have picked. d.mu is held.
func (d *Daemon) publishPools() {
	if d.opts.Domains == nil || !d.started {
		return
	}
	pools := map[string][]string{}
	for _, b := range d.state.Bonds() {
		p, _ := d.state.Pool(b.Bond)
		vfs := []string{}
		if act := p.Active(); act != "" {
			for _, v := range p.Free(act) {
				vfs = append(vfs, v.PCI)
			}
		}
		pools[b.Bond] = vfs
	}
	d.opts.Domains.SetPools(pools)
}
