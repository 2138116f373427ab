package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
)

var _ api.Backend = (*Daemon)(nil)

// Status implements api.Backend.
func (d *Daemon) Status(ctx context.Context) (*vflagpb.StatusResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := &vflagpb.StatusResponse{Libvirt: "off: libvirt not installed, or libvirt: {enabled: false}"}
	if d.opts.Domains != nil {
		r.Libvirt = d.opts.Domains.State()
	}
	for _, b := range d.state.Bonds() {
		pool, _ := d.state.Pool(b.Bond)
		pfs := pool.PFs()
		bd := &vflagpb.Bond{Name: b.Bond, Active: b.Active, Policy: string(b.Policy)}
		for i, p := range b.Ports {
			bd.Ports = append(bd.Ports, &vflagpb.Port{
				Name: p.PF, Pci: pfs[i].PCI, Driver: pfs[i].Driver, Carrier: p.Carrier,
				VfsTotal: uint32(p.Total), VfsUsed: uint32(p.Used),
			})
		}
		d.rdmaStatus(ctx, bd)
		r.Bonds = append(r.Bonds, bd)
	}
	return r, nil
}

// rdmaStatus fills in a bond's RDMA health (read-only checks of sysfs).
func (d *Daemon) rdmaStatus(ctx context.Context, bd *vflagpb.Bond) {
	b, ok := d.bondConfig(bd.GetName())
	if !ok {
		return
	}
	bd.RdmaMode = string(rdmamgr.ModeOff)
	if b.RDMA == "" || b.RDMA == rdmamgr.ModeOff || d.opts.RDMA == nil {
		return
	}
	rs := d.opts.RDMA.Check(ctx, b.Name, b.RDMA)
	bd.RdmaMode, bd.RdmaDevice, bd.RdmaState = string(b.RDMA), rs.Device, string(rs.State)
	bd.RdmaHealthy, bd.RdmaProblems = rs.Healthy, rs.Problems
}

// ListVMs implements api.Backend.
func (d *Daemon) ListVMs(_ context.Context, vm string) ([]*vflagpb.VMInterface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*vflagpb.VMInterface
	for _, a := range d.state.Allocations() {
		if vm == "" || a.VM == vm {
			out = append(out, d.toPB(a))
		}
	}
	if vm != "" && len(out) == 0 {
		return nil, fmt.Errorf("VM %s: %w", vm, vfmgr.ErrNotManaged)
	}
	return out, nil
}

func (d *Daemon) toPB(a vfmgr.Allocation) *vflagpb.VMInterface {
	i := &vflagpb.VMInterface{
		Vm: a.VM, Iface: a.Iface, Mac: a.MAC.String(), Vlan: uint32(a.VLAN), Qos: uint32(a.QoS), Trust: a.Trust,
		Bond: a.Bond, Pf: a.VF.PF, Vf: uint32(a.VF.Index), SinceUnixMs: a.Since.UnixMilli(),
		Netns: a.Netns, NetnsIfname: a.NetnsIfname, Mode: string(a.Mode), DomainUuid: a.DomainUUID,
	}
	if pool, ok := d.state.Pool(a.Bond); ok {
		if vf, ok := pool.VF(a.VF); ok {
			i.VfPci = vf.PCI
		}
	}
	for _, ad := range a.Addrs {
		i.Addrs = append(i.Addrs, ad.String())
	}
	return i
}

// Attach implements api.Backend: allocate per the bond's policy (or adopt
// the VF at req.Pci), persist, configure the VF through its PF (MAC, VLAN,
// spoof check on, trust), hand it to the VM side. Any failure undoes every
// earlier step, so a VF is never left half configured: sriov.ConfigureVF
// rolls back its own steps, and the allocation is dropped from table and
// store. A repeated request for what the interface holds changes nothing.
func (d *Daemon) Attach(ctx context.Context, req *vflagpb.AttachRequest) (*vflagpb.VMInterface, error) {
	mac, err := net.ParseMAC(req.GetMac())
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("attach %s: MAC %q: %w", req.GetVm(), req.GetMac(), api.ErrInvalid)
	}
	if req.GetNetns() != "" && (filepath.Base(req.GetNetns()) != req.GetNetns() || req.GetNetnsIfname() == "") {
		return nil, fmt.Errorf("attach %s: netns %q needs a plain name and an interface name: %w", req.GetVm(), req.GetNetns(), api.ErrInvalid)
	}
	if req.GetNetns() != "" && d.opts.VMs == nil {
		return nil, fmt.Errorf("attach %s: this vflagd has no namespace VM side: %w", req.GetVm(), api.ErrInvalid)
	}
	pci := req.GetPci()
	if pci != "" {
		c, err := vfmgr.CanonicalPCI(pci)
		if err != nil {
			return nil, fmt.Errorf("attach %s: %w: %w", req.GetVm(), err, api.ErrInvalid)
		}
		pci = c
		if req.GetNetns() != "" {
			return nil, fmt.Errorf("attach %s: adopting VF %s is for libvirt VMs, not namespace VMs: %w", req.GetVm(), pci, api.ErrInvalid)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := vfmgr.Request{
		VM: req.GetVm(), Iface: req.GetIface(), Bond: req.GetBond(), MAC: mac,
		VLAN: int(req.GetVlan()), QoS: int(req.GetQos()), Trust: req.GetTrust(), At: time.Now(),
		PCI: pci, Mode: vfmgr.Mode(req.GetMode()), DomainUUID: req.GetDomainUuid(),
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("attach %s: %w: %w", req.GetVm(), err, api.ErrInvalid)
	}
	prev, held := d.state.Allocation(r.Key())
	if !held && r.PCI != "" && r.Mode == vfmgr.ModeDefault {
		// The hook leaves the mode to vflagd when the XML says none: a VF
		// someone else placed is adopted. (A VF of vflag's own pool network
		// would rather be hotswap, once vflagd maintains those networks.)
		r.Mode = vfmgr.ModeAdopt
	}
	a, err := d.state.Allocate(r)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", req.GetVm(), err)
	}
	if held {
		// A repeated request: the interface keeps what it holds, and
		// nothing below may undo it (the VM uses that VF).
		if prev.Netns != req.GetNetns() || prev.NetnsIfname != req.GetNetnsIfname() {
			return nil, fmt.Errorf("attach %s: %s holds %s in netns %q as %q: %w",
				req.GetVm(), a.Key(), a.VF, prev.Netns, prev.NetnsIfname, vfmgr.ErrAllocated)
		}
		return d.toPB(prev), nil
	}
	a.Netns, a.NetnsIfname = req.GetNetns(), req.GetNetnsIfname()
	undo := func(cause error) error {
		if _, rerr := d.state.Release(a.Key()); rerr != nil {
			cause = fmt.Errorf("%w (and releasing: %w)", cause, rerr)
		}
		return fmt.Errorf("attach %s: %w", req.GetVm(), cause)
	}
	if err := d.opts.Store.Put(a); err != nil {
		return nil, undo(err)
	}
	if err := d.opts.Kernel.ConfigureVF(ctx, a.VF.PF, a.VF.Index, vfConfig(a)); err != nil {
		return nil, undo(errors.Join(err, d.opts.Store.Delete(a.Key())))
	}
	if a.Netns != "" {
		if err := d.opts.VMs.Plug(ctx, a, a.VF); err != nil {
			return nil, undo(errors.Join(err, d.opts.Kernel.ResetVF(ctx, a.VF.PF, a.VF.Index), d.opts.Store.Delete(a.Key())))
		}
	}
	// The table keeps what the VM side says in an adopted copy of the
	// allocation (netns fields are not part of the pool's record).
	_, _ = d.state.Release(a.Key())
	if err := d.state.Adopt(a); err != nil {
		return nil, fmt.Errorf("attach %s: %w", req.GetVm(), err)
	}
	d.log.Info("VF attached", "vm", a.VM, "mac", a.MAC.String(), "vlan", a.VLAN, "vf", a.VF.String(), "mode", string(a.Mode), "adopted", pci != "")
	d.emit(&vflagpb.Event{Kind: "attach", Bond: a.Bond, Pf: a.VF.PF, Vm: a.VM, Mac: a.MAC.String()})
	d.changed()
	return d.toPB(a), nil
}

// Detach implements api.Backend: take the VF back from the VM side, reset
// it, forget the allocation.
func (d *Daemon) Detach(ctx context.Context, vm, iface string) ([]*vflagpb.VMInterface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*vflagpb.VMInterface
	var errs []error
	for _, a := range d.state.Allocations() {
		if a.VM != vm || (iface != "" && a.Iface != iface) {
			continue
		}
		if a.Netns != "" && d.opts.VMs != nil {
			if err := d.opts.VMs.Unplug(ctx, a); err != nil {
				errs = append(errs, err)
			}
		}
		if err := d.release(ctx, a); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, d.toPB(a))
		d.emit(&vflagpb.Event{Kind: "detach", Bond: a.Bond, Pf: a.VF.PF, Vm: a.VM, Mac: a.MAC.String()})
	}
	d.changed()
	if len(out) == 0 && len(errs) == 0 {
		return nil, fmt.Errorf("detach: VM %s %s: %w", vm, iface, vfmgr.ErrNotManaged)
	}
	return out, errors.Join(errs...)
}

// Failover implements api.Backend: it makes the bond switch its active
// port; the bond watcher sees the change and the VMs follow. It returns
// once the state shows the new active port (or after 5 s).
func (d *Daemon) Failover(ctx context.Context, bond, to string) (*vflagpb.FailoverResponse, error) {
	d.mu.Lock()
	if bond == "" {
		if bs := d.state.Bonds(); len(bs) == 1 {
			bond = bs[0].Bond
		}
	}
	pool, ok := d.state.Pool(bond)
	var from string
	var known bool
	if ok {
		st := pool.Status()
		from = st.Active
		for _, p := range st.Ports {
			known = known || p.PF == to
		}
	}
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("failover: bond %q: %w", bond, vfmgr.ErrNotManaged)
	}
	if !known {
		return nil, fmt.Errorf("failover: %s is not a port of %s: %w", to, bond, vfmgr.ErrNotManaged)
	}
	if err := d.opts.BondCtl.SetActive(ctx, bond, to); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		p, _ := d.state.Pool(bond)
		active := p.Status().Active
		moved := 0
		for _, a := range p.Allocations() {
			if a.VF.PF == to {
				moved++
			}
		}
		d.mu.Unlock()
		if active == to {
			return &vflagpb.FailoverResponse{Bond: bond, From: from, To: to, Moved: uint32(moved)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("failover: %s did not make %s active within 5 s", bond, to)
}
