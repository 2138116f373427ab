// Command vflag-guest is the testbed's agent inside the guest VM: it loads the
// kernel modules the guest needs and lets the host run commands in the guest
// over a virtio-serial port (package testenv/guestagent).
//
//	vflag-guest load-modules FILE
//	vflag-guest serve [-port-name vflag.agent] [-debug]
//	vflag-guest hotplug IFNAME CIDR...   (inside a namespace VM: package nsguest)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/vflag/vflag/testenv/guestagent"
	"github.com/vflag/vflag/testenv/nsguest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vflag-guest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vflag-guest", flag.ContinueOnError)
	portName := fs.String("port-name", guestagent.DefaultPortName, "name of the virtio-serial port to serve (serve)")
	debug := fs.Bool("debug", false, "log every request")
	if len(args) == 0 || fs.Parse(args[1:]) != nil {
		return fmt.Errorf("usage: vflag-guest load-modules FILE | serve [-port-name NAME] [-debug] | hotplug IFNAME CIDR")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	switch {
	case args[0] == "load-modules" && fs.NArg() == 1:
		return guestagent.LoadModules(fs.Arg(0), log)
	case args[0] == "hotplug" && fs.NArg() >= 2:
		g := nsguest.Guest{Ifname: fs.Arg(0), Log: log}
		for _, a := range fs.Args()[1:] {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return fmt.Errorf("hotplug address %q: %w", a, err)
			}
			g.Addrs = append(g.Addrs, p)
		}
		return g.Run(ctx)
	case args[0] == "serve" && fs.NArg() == 0:
		err := guestagent.ServePort(ctx, "/sys", *portName, log)
		if ctx.Err() != nil {
			return nil // stopped by a signal
		}
		return err
	}
	return fmt.Errorf("unknown command %q or wrong arguments; run without arguments for usage", args[0])
}
