package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/vishvananda/netns"

	"github.com/vflag/vflag/announce"
	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/rdmamgr"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/bondwatch"
	"github.com/vflag/vflag/vfmgr/config"
	"github.com/vflag/vflag/vfmgr/nsvm"
	"github.com/vflag/vflag/vfmgr/sriov"
	"github.com/vflag/vflag/vfmgr/store"
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
	opts := Options{
		HoldDown: cfg.HoldDown, RARPWithoutAddrs: cfg.Announce.RARPWithoutAddrs,
		Kernel: kernel, BondCtl: SysfsBonds{}, Store: st, VMs: nsvm.VMs{},
		Announcer: &announce.Announcer{Sender: sender, Count: cfg.Announce.Count, Interval: cfg.Announce.Interval, Log: log},
		RDMA:      &rdmamgr.Manager{Log: log},
		Metrics:   metrics, Log: log,
	}
	for _, b := range cfg.Bonds {
		opts.Bonds = append(opts.Bonds, BondConfig{
			Name: b.Name, PFs: [2]string{b.PFs[0], b.PFs[1]}, VFsPerPF: b.VFsPerPF,
			Policy: b.Policy, FailbackAfter: b.Failback.After, RDMA: b.RDMA,
		})
	}
	d := New(opts)
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
