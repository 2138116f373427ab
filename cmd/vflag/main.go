// Command vflag controls a running vflagd over its local API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vflag/vflag/api/cli"
	"github.com/vflag/vflag/vfmgr/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	validate := func(path string) error { _, err := config.Load(path); return err }
	err := cli.New(os.Stdout, os.Stderr, validate).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vflag:", err)
		os.Exit(cli.ExitCode(err)) // vflag doctor: 1 warnings, 2 failures
	}
}
