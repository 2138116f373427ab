package virt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/vflag/vflag/vfmgr"
)

// DefaultURI is the libvirt connection vflagd uses unless configured.
const DefaultURI = "qemu:///system"

// DefaultUnplugTimeout bounds how long a guest may take to let go of a
// VF after libvirt asked it to (the guest must acknowledge a PCI
// hot-unplug; under nested TCG that took seconds).
const DefaultUnplugTimeout = time.Minute

// Handler is what the libvirt side tells vflagd (vfmgr/daemon implements
// it). Its methods are called from one goroutine, never from inside
// libvirt's event loop.
type Handler interface {
	// DomainGone says that domain uuid (name) no longer runs: shut down,
	// destroyed, crashed, saved, migrated away. vflagd releases whatever
	// it still holds for it (the hook's release normally did already).
	DomainGone(ctx context.Context, uuid, name, why string)
	// Connected gives the domains running (UUID to name) when vflagd
	// (re)connected to libvirtd, so that vflagd releases what it holds for
	// domains that stopped while nobody was listening.
	Connected(ctx context.Context, running map[string]string)
}

// Options configure a Conn.
type Options struct {
	// URI is libvirt's connection URI (DefaultURI when empty).
	URI string
	// Sysfs is where sysfs is mounted ("/sys" when empty); the VF's PCI
	// address is read from it.
	Sysfs string
	// UnplugTimeout bounds a hot-unplug (DefaultUnplugTimeout when 0).
	UnplugTimeout time.Duration
	// Log is the logger.
	Log *slog.Logger
}

// Conn is vflagd's connection to libvirtd. Run keeps it up; Plug, Unplug
// and Addrs make it vflagd's VM side for libvirt domains
// (vfmgr/daemon.VMSide).
type Conn struct {
	opts Options
	log  *slog.Logger

	mu   sync.Mutex
	conn *libvirt.Connect // nil while disconnected
	// unplugged keeps the interface each re-homed VM had, by allocation
	// key, from Unplug to the Plug that gives it its new VF.
	unplugged map[string]libvirtxml.DomainInterface
	// pools are the pool networks' wanted VFs by bond, synced what libvirt
	// has now (since the connection).
	pools, synced map[string][]string
	poke          chan struct{}
	// lastErr is why the last connection attempt failed.
	lastErr error
}

// New returns a Conn; Run connects it.
func New(opts Options) *Conn {
	if opts.URI == "" {
		opts.URI = DefaultURI
	}
	if opts.Sysfs == "" {
		opts.Sysfs = "/sys"
	}
	if opts.UnplugTimeout == 0 {
		opts.UnplugTimeout = DefaultUnplugTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Conn{
		opts: opts, log: opts.Log.With("libvirt", opts.URI),
		unplugged: map[string]libvirtxml.DomainInterface{},
		pools:     map[string][]string{}, synced: map[string][]string{},
		poke: make(chan struct{}, 1),
	}
}

// ErrNotConnected is returned while vflagd has no connection to libvirtd.
var ErrNotConnected = errors.New("not connected to libvirtd")

var eventLoop struct {
	once sync.Once
	err  error
}

// Load loads libvirt and starts its event loop, once per process. It
// fails when libvirt.so.0 cannot be loaded (a host without libvirt).
func Load() error { return startEventLoop() }

// startEventLoop registers libvirt's default event loop and runs it,
// once per process.
func startEventLoop() error {
	eventLoop.once.Do(func() {
		if eventLoop.err = libvirt.EventRegisterDefaultImpl(); eventLoop.err != nil {
			return
		}
		go func() {
			for {
				if err := libvirt.EventRunDefaultImpl(); err != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	})
	return eventLoop.err
}

// gone is a domain that stopped, as the event callback saw it.
type gone struct{ uuid, name, why string }

// Run connects to libvirtd and stays connected until ctx ends: it
// reconnects with backoff when libvirtd goes away (a restart), and on
// every connection tells h which domains run. It returns an error only
// when libvirt itself cannot be used (libvirt.so.0 missing).
func (c *Conn) Run(ctx context.Context, h Handler) error {
	if err := startEventLoop(); err != nil {
		return fmt.Errorf("libvirt %s: %w", c.opts.URI, err)
	}
	backoff := time.Second
	for {
		evs := make(chan gone, 64)
		closed, err := c.connect(ctx, h, evs)
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		if err != nil {
			c.log.Warn("libvirtd not reachable; retrying", "in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
	connected:
		for {
			select {
			case <-ctx.Done():
				c.disconnect()
				return nil
			case <-closed:
				c.log.Warn("connection to libvirtd lost; reconnecting")
				c.disconnect()
				break connected
			case g := <-evs:
				if c.running(g.uuid) {
					// Stopped and started again before we got here.
					continue
				}
				c.mu.Lock()
				for k := range c.unplugged {
					if strings.HasPrefix(k, g.name+"/") {
						delete(c.unplugged, k) // its interfaces went with it
					}
				}
				c.mu.Unlock()
				h.DomainGone(ctx, g.uuid, g.name, g.why)
			case <-c.poke:
				c.syncPools()
			}
		}
	}
}

// connect opens the connection, subscribes to lifecycle events and tells
// h what runs. closed is closed when libvirt drops the connection.
func (c *Conn) connect(ctx context.Context, h Handler, evs chan<- gone) (<-chan struct{}, error) {
	conn, err := libvirt.NewConnect(c.opts.URI)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (<-chan struct{}, error) {
		_, _ = conn.Close()
		return nil, err
	}
	// Keepalive notices a libvirtd that died without closing the socket.
	if err := conn.SetKeepAlive(5, 3); err != nil {
		return fail(fmt.Errorf("keepalive: %w", err))
	}
	closed := make(chan struct{})
	var once sync.Once
	if err := conn.RegisterCloseCallback(func(*libvirt.Connect, libvirt.ConnectCloseReason) {
		once.Do(func() { close(closed) })
	}); err != nil {
		return fail(fmt.Errorf("close callback: %w", err))
	}
	if _, err := conn.DomainEventLifecycleRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, ev *libvirt.DomainEventLifecycle) {
		if ev.Event != libvirt.DOMAIN_EVENT_STOPPED {
			return
		}
		uuid, err := d.GetUUIDString()
		if err != nil {
			return
		}
		name, _ := d.GetName()
		select {
		case evs <- gone{uuid: uuid, name: name, why: stopped(libvirt.DomainEventStoppedDetailType(ev.Detail))}:
		default:
			// Full: the next connection's reconciliation catches it.
			c.log.Warn("domain event dropped", "domain", name, "event", stopped(libvirt.DomainEventStoppedDetailType(ev.Detail)))
		}
	}); err != nil {
		return fail(fmt.Errorf("domain events: %w", err))
	}
	doms, err := conn.ListAllDomains(libvirt.CONNECT_LIST_DOMAINS_ACTIVE)
	if err != nil {
		return fail(fmt.Errorf("list domains: %w", err))
	}
	running := map[string]string{}
	for _, d := range doms {
		uuid, err := d.GetUUIDString()
		name, _ := d.GetName()
		_ = d.Free()
		if err == nil {
			running[uuid] = name
		}
	}
	c.mu.Lock()
	c.conn = conn
	c.synced = map[string][]string{}
	c.mu.Unlock()
	c.log.Info("connected to libvirtd", "running", len(running))
	h.Connected(ctx, running)
	c.syncPools()
	return closed, nil
}

func (c *Conn) disconnect() {
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		_ = conn.UnregisterCloseCallback()
		_, _ = conn.Close()
	}
}

// current returns the live connection or ErrNotConnected.
func (c *Conn) current() (*libvirt.Connect, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, fmt.Errorf("libvirt %s: %w", c.opts.URI, ErrNotConnected)
	}
	return c.conn, nil
}

// State says whether vflagd is connected to libvirtd, for vflag status.
func (c *Conn) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.conn != nil:
		return "connected to " + c.opts.URI
	case c.lastErr != nil:
		return fmt.Sprintf("not connected to %s: %v (retrying)", c.opts.URI, c.lastErr)
	}
	return "not connected to " + c.opts.URI + " yet"
}

// running reports whether domain uuid is running now.
func (c *Conn) running(uuid string) bool {
	conn, err := c.current()
	if err != nil {
		return false
	}
	d, err := conn.LookupDomainByUUIDString(uuid)
	if err != nil {
		return false
	}
	defer func() { _ = d.Free() }()
	ok, err := d.IsActive()
	return err == nil && ok
}

// domain looks up the allocation's domain.
func (c *Conn) domain(a vfmgr.Allocation) (*libvirt.Domain, error) {
	if a.DomainUUID == "" {
		return nil, fmt.Errorf("%s is not a libvirt domain's interface (no domain UUID)", a.Key())
	}
	conn, err := c.current()
	if err != nil {
		return nil, err
	}
	d, err := conn.LookupDomainByUUIDString(a.DomainUUID)
	if err != nil {
		return nil, fmt.Errorf("domain %s (%s): %w", a.VM, a.DomainUUID, err)
	}
	return d, nil
}

// Unplug hot-unplugs the VF of a's interface from its running domain
// (live only: the persistent definition keeps what the operator wrote)
// and waits until the guest let go of it. The interface is kept for the
// Plug that follows.
func (c *Conn) Unplug(ctx context.Context, a vfmgr.Allocation) error {
	d, err := c.domain(a)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	iface, pci, err := liveVF(d, a.MAC)
	if errors.Is(err, errNoVF) {
		c.mu.Lock()
		_, earlier := c.unplugged[a.Key()]
		c.mu.Unlock()
		if earlier {
			// An earlier Unplug timed out with the removal pending and the
			// guest let go since: the VF is gone, the recorded interface
			// is what Plug brings back.
			c.log.Info("VF already hot-unplugged: the guest let go after an earlier request timed out", "domain", a.VM, "mac", a.MAC.String())
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("domain %s: %w", a.VM, err)
	}
	raw, err := iface.Marshal()
	if err != nil {
		return fmt.Errorf("domain %s: interface %s: %w", a.VM, a.MAC, err)
	}
	c.mu.Lock()
	c.unplugged[a.Key()] = *iface
	c.mu.Unlock()
	start := time.Now()
	if err := d.DetachDeviceFlags(raw, libvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
		return fmt.Errorf("hot-unplug VF %s (MAC %s) from domain %s: %w", pci, a.MAC, a.VM, err)
	}
	// libvirt waits a few seconds for the guest and may return with the
	// removal still pending: the VF is free only once it left the live XML.
	deadline := time.Now().Add(c.opts.UnplugTimeout)
	for {
		_, _, err := liveVF(d, a.MAC)
		if errors.Is(err, errNoVF) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("domain %s still holds VF %s %s after the hot-unplug request (the guest must acknowledge it)", a.VM, pci, c.opts.UnplugTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hot-unplug VF %s from domain %s: %w", pci, a.VM, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.log.Info("VF hot-unplugged", "domain", a.VM, "mac", a.MAC.String(), "vf", pci, "took", time.Since(start))
	return nil
}

// Plug hot-plugs VF vf into a's running domain as the interface Unplug
// took away (same MAC, VLAN, guest PCI slot and <teaming>), or, when
// there is none (vflagd restarted in between), as a plain hostdev
// interface with a's MAC and VLAN.
func (c *Conn) Plug(ctx context.Context, a vfmgr.Allocation, vf vfmgr.VFRef) error {
	pci, err := c.vfPCI(vf)
	if err != nil {
		return err
	}
	d, err := c.domain(a)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	c.mu.Lock()
	iface, ok := c.unplugged[a.Key()]
	c.mu.Unlock()
	if !ok {
		iface = hostdevInterface(a)
		c.log.Warn("no record of the interface's XML; plugging a plain hostdev interface", "domain", a.VM, "mac", a.MAC.String())
	}
	raw, err := withVF(iface, pci)
	if err != nil {
		return fmt.Errorf("domain %s: %w", a.VM, err)
	}
	start := time.Now()
	if err := d.AttachDeviceFlags(raw, libvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
		return fmt.Errorf("hot-plug VF %s (%s, MAC %s) into domain %s: %w", pci, vf, a.MAC, a.VM, err)
	}
	c.mu.Lock()
	delete(c.unplugged, a.Key())
	c.mu.Unlock()
	c.log.Info("VF hot-plugged", "domain", a.VM, "mac", a.MAC.String(), "vf", pci, "took", time.Since(start))
	return nil
}

// Addrs returns the addresses vflagd knows for a's interface. It asks
// libvirt nothing: it runs on the failover path, before the hot-unplug,
// and libvirt learns a VF guest's addresses only from the host's ARP table
// (the VF's traffic bypasses the host) or a guest agent vflag cannot
// count on. Announcements without addresses go out as RARP.
func (c *Conn) Addrs(_ context.Context, a vfmgr.Allocation) ([]netip.Addr, error) {
	return a.Addrs, nil
}

// vfPCI reads VF vf's PCI address from sysfs.
func (c *Conn) vfPCI(vf vfmgr.VFRef) (string, error) {
	link := filepath.Join(c.opts.Sysfs, "class/net", vf.PF, "device", fmt.Sprintf("virtfn%d", vf.Index))
	target, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("PCI address of %s: %w", vf, err)
	}
	return filepath.Base(target), nil
}

// SetPools says which VFs (PCI addresses) each bond's vflag-<bond>
// network should list; they are synced to libvirt in the background, now
// and after every reconnection.
func (c *Conn) SetPools(pools map[string][]string) {
	c.mu.Lock()
	changed := !maps.EqualFunc(c.pools, pools, slices.Equal[[]string])
	if changed {
		c.pools = maps.Clone(pools)
	}
	c.mu.Unlock()
	if changed {
		select {
		case c.poke <- struct{}{}:
		default:
		}
	}
}

// syncPools brings every pool network whose VFs changed up to date.
func (c *Conn) syncPools() {
	c.mu.Lock()
	conn := c.conn
	todo := map[string][]string{}
	for bond, vfs := range c.pools {
		if got, ok := c.synced[bond]; !ok || !slices.Equal(got, vfs) {
			todo[bond] = vfs
		}
	}
	c.mu.Unlock()
	if conn == nil {
		return
	}
	for bond, vfs := range todo {
		if err := SyncPool(conn, bond, vfs); err != nil {
			c.log.Error("pool network", "bond", bond, "err", err)
			continue
		}
		c.mu.Lock()
		c.synced[bond] = vfs
		c.mu.Unlock()
		c.log.Info("pool network synced", "bond", bond, "vfs", len(vfs))
	}
}

// stopped says how a domain stopped, for logs and events.
func stopped(d libvirt.DomainEventStoppedDetailType) string {
	switch d {
	case libvirt.DOMAIN_EVENT_STOPPED_SHUTDOWN:
		return "stopped (shut down)"
	case libvirt.DOMAIN_EVENT_STOPPED_DESTROYED:
		return "stopped (destroyed)"
	case libvirt.DOMAIN_EVENT_STOPPED_CRASHED:
		return "stopped (crashed)"
	case libvirt.DOMAIN_EVENT_STOPPED_MIGRATED:
		return "stopped (migrated away)"
	case libvirt.DOMAIN_EVENT_STOPPED_SAVED:
		return "stopped (saved)"
	case libvirt.DOMAIN_EVENT_STOPPED_FAILED:
		return "stopped (failed)"
	case libvirt.DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT:
		return "stopped (snapshot reverted)"
	}
	return "stopped"
}
