package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/vishvananda/netns"

	"github.com/vflag/vflag/announce"
	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/firmware"
	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/bondwatch"
	"github.com/vflag/vflag/vfmgr/config"
	"github.com/vflag/vflag/vfmgr/nsvm"
	"github.com/vflag/vflag/vfmgr/sriov"
	"github.com/vflag/vflag/vfmgr/store"
	"github.com/vflag/vflag/vfmgr/virt"
)

// Main runs vflagd with the configuration file at path until ctx ends:
// everything real (rtnetlink, sysfs, bbolt, AF_PACKET, the API socket).
func Main(ctx context.Context, path string, log *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	kernel := &sriov.Kernel{}
	if err := cfg.CheckHost(func(pf string) (vfmgr.PF, error) { return kernel.PF(ctx, pf) }); err != nil {
		return err
	}
	st, err := store.Open(cfg.State.Path, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	sender := &announce.PacketSender{}
	defer sender.Close()
	var metrics *Metrics
	if cfg.Metrics.Listen != "" {
		metrics = NewMetrics()
		stop, err := metrics.Serve(cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics listener %s: %w", cfg.Metrics.Listen, err)
		}
		defer stop()
	}
	// d is set before any backend call, so before any restart.
	var d *Daemon
	nics, kern, stopBackends, err := launchBackends(ctx, cfg, kernel, log, func(name string) {
		rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = d.Resync(rctx, "backend "+name+" restarted")
	})
	if err != nil {
		return err
	}
	defer stopBackends()
	opts := Options{
		HoldDown: cfg.HoldDown, RARPWithoutAddrs: cfg.Announce.RARPWithoutAddrs,
		Kernel: kern, NICs: nics, BondCtl: SysfsBonds{}, Store: st, VMs: nsvm.VMs{},
		Announcer: &announce.Announcer{Sender: sender, Count: cfg.Announce.Count, Interval: cfg.Announce.Interval, Log: log},
		RDMA:      &rdmamgr.Manager{Log: log},
		Metrics:   metrics, Log: log,
	}
	var lv *virt.Conn
	if cfg.Libvirt.Enabled {
		if err := virt.Load(); err != nil {
			log.Warn("libvirt is not installed: vflagd's libvirt side is off", "err", err)
		} else {
			lv = virt.New(virt.Options{URI: cfg.Libvirt.URI, UnplugTimeout: cfg.Libvirt.UnplugTimeout, Log: log})
			opts.Domains = lv
		}
	}
	for _, b := range cfg.Bonds {
		opts.Bonds = append(opts.Bonds, BondConfig{
			Name: b.Name, PFs: [2]string{b.PFs[0], b.PFs[1]}, VFsPerPF: b.VFsPerPF,
			Policy: b.Policy, FailbackAfter: b.Failback.After, RDMA: b.RDMA, Mode: plugin.Mode(b.Mode),
		})
	}
	d = New(opts)
	defer d.Close()

	// Subscribe before taking the inventory, so no change falls between.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, werrs, err := bondwatch.Watch(wctx, netns.None())
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	srv, err := api.Listen(api.SocketConfig{Path: cfg.API.Socket, Group: cfg.API.Group}, d, log)
	if err != nil {
		return err
	}
	defer srv.Stop()
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("API server", "err", err)
		}
	}()
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify", "err", err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(wctx, msgs) }()
	if lv != nil {
		// libvirtd may be down or absent: vflagd keeps working without it
		// (failover and hotswap interfaces fail to move until it is back).
		go func() {
			if err := lv.Run(wctx, d); err != nil {
				log.Error("libvirt side off", "err", err)
			}
		}()
	}
	select {
	case <-ctx.Done():
		cancel()
		return <-runErr
	case err := <-werrs:
		return err
	case err := <-runErr:
		if err == nil {
			err = errors.New("event loop ended")
		}
		return err
	}
}

// launchBackends starts the NIC backend of each bond (config backend, or
// for auto the one firmware.ForDriver names for its PFs' driver), one
// process per backend, and returns them by bond, the Kernel seam they
// serve, and a function that stops them. restarted is called when a
// backend ran again after it was lost.
func launchBackends(ctx context.Context, cfg *config.Config, kernel *sriov.Kernel, log *slog.Logger, restarted func(name string)) (map[string]plugin.Backend, Kernel, func(), error) {
	clients := map[config.Backend]*plugin.Client{}
	stop := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	nics := map[string]plugin.Backend{}
	byPF := map[string]plugin.Backend{}
	for i, b := range cfg.Bonds {
		name := b.Backend
		if name == config.BackendAuto {
			var drivers []string
			for _, pf := range b.PFs {
				p, err := kernel.PF(ctx, pf)
				if err != nil {
					stop()
					return nil, nil, nil, cfg.Errorf(fmt.Sprintf("bonds[%d].backend", i), "auto: the driver of %s: %v", pf, err)
				}
				drivers = append(drivers, p.Driver)
			}
			name = config.Backend(firmware.ForDriver(drivers[0]))
			if firmware.ForDriver(drivers[1]) != string(name) {
				log.Warn("the bond's ports have different drivers; using the generic backend", "bond", b.Name, "drivers", drivers)
				name = config.BackendGeneric
			}
		}
		c, ok := clients[name]
		if !ok {
			bin := cfg.Backends.Binary(name)
			var err error
			c, err = plugin.Launch(ctx, plugin.Config{
				Name: string(name), Path: bin.Path, SHA256: bin.SHA256,
				OnRestart: func() { restarted(string(name)) },
				Log:       log,
			})
			if err != nil {
				stop()
				return nil, nil, nil, fmt.Errorf("bond %s: %w", b.Name, err)
			}
			clients[name] = c
		}
		log.Info("bond served by backend", "bond", b.Name, "backend", string(name), "pid", c.PID())
		nics[b.Name] = c
		for _, pf := range b.PFs {
			byPF[pf] = c
		}
	}
	return nics, BackendKernel{ByPF: byPF}, stop, nil
}
