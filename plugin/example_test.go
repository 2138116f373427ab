package plugin_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/vflag/vflag/plugin"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// vflagd runs the generic backend from where vflag's package installs it,
// checked against /usr/lib/vflag/backends/vflag-backend-generic.sha256,
// and configures a VF through it.
func ExampleLaunch() {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	be, err := plugin.Launch(ctx, plugin.Config{
		Name:        "generic",
		CallTimeout: 5 * time.Second,
		OnRestart:   func() { log.Warn("backend restarted: re-reading VF state") },
		Log:         log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer be.Close()
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	if err := be.ConfigureVF(ctx, "ens1f0", 3, sriov.VFConfig{MAC: mac, VLAN: 100, SpoofChk: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
