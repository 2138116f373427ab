package rdmamgr_test

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"os"

	"github.com/vflag/vflag/rdmamgr"
)

// Keep the host's RDMA on bond0 across a port loss with Soft-RoCE, as
// vflagd does for a bond configured with rdma: soft. (Not run: it needs a
// kernel with rdma_rxe.)
func ExampleManager_Ensure() {
	m := &rdmamgr.Manager{Log: slog.New(slog.NewTextHandler(os.Stderr, nil))} // /sys and the host's netlink
	st, err := m.Ensure(context.Background(), "bond0", rdmamgr.ModeSoft)
	switch {
	case errors.Is(err, rdmamgr.ErrPortRXE):
		// An rxe device sits on a port: replace it only if the operator says so.
		log.Fatal(err) // names it: "rxe0 on pf0 would not survive the loss of its port: ..."
	case err != nil:
		log.Fatal(err) // says what to do: "load it: modprobe rdma_rxe", "add an address to bond0", ...
	}
	log.Printf("RDMA on %s: %s port %d %s, %d GIDs", st.Bond, st.Device, st.Port, st.State, len(st.GIDs))
}

// Report the RDMA health of bond0 without changing anything, as `vflag
// doctor` does. (Not run: it needs a kernel with RDMA.)
func ExampleManager_Check() {
	m := &rdmamgr.Manager{}
	st := m.Check(context.Background(), "bond0", rdmamgr.ModeHW)
	if !st.Healthy {
		for _, p := range st.Problems {
			log.Println(p) // e.g. "no RoCE LAG on the bond: mlx5_0 on ens1f0 and mlx5_1 on ens1f1: ..."
		}
	}
}

// List the RDMA devices with their ports and GIDs, as `rdma link` and
// `ibv_devinfo -v` would. (Not run: it needs a kernel with RDMA.)
func ExampleManager_Devices() {
	m := &rdmamgr.Manager{}
	devs, err := m.Devices(context.Background())
	if errors.Is(err, rdmamgr.ErrNoRDMA) {
		log.Println("no RDMA on this host")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range devs {
		for _, p := range d.Ports {
			log.Printf("%s/%d (%s) %s on %s", d.Name, p.Number, d.Driver, p.State, p.Netdev)
			for _, g := range p.GIDs {
				log.Printf("  gid %d %s %s %s", g.Index, g.Addr, g.Type, g.Netdev)
			}
		}
	}
}
