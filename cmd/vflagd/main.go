// Command vflagd is vflag's daemon: it keeps VMs' SR-IOV VFs on the active
// port of their bond and announces them on failover (package
// vfmgr/daemon).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vflag/vflag/vfmgr/daemon"
)

func main() {
	path := flag.String("config", "/etc/vflag/vflag.yaml", "configuration file")
	debug := flag.Bool("debug", false, "debug logging")
	flag.Parse()
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Main(ctx, *path, log); err != nil {
		fmt.Fprintln(os.Stderr, "vflagd:", err)
		os.Exit(1)
	}
}
