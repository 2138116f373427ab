package plugin

import (
	"context"
	"net"
	"testing"

	"github.com/vflag/vflag/vfmgr/sriov"
)

// BenchmarkConfigureVF measures what the process boundary costs one
// ConfigureVF (the call a failover makes once per moved VM): a direct
// call on the backend, the same over go-plugin's in-memory gRPC pair, and
// over a real backend process through Client (timeout, restart check,
// error mapping included). The fake backend's own work is a map update,
// so the differences are the transport.
func BenchmarkConfigureVF(b *testing.B) {
	cfg := sriov.VFConfig{MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, VLAN: 100, SpoofChk: true}
	run := func(b *testing.B, be Backend) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := be.ConfigureVF(ctx, "pf0", 2, cfg); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, newFake("fake", "")) })
	b.Run("grpc-in-process", func(b *testing.B) { run(b, overGRPC(b, newFake("fake", ""))) })
	b.Run("subprocess", func(b *testing.B) {
		c := launchBench(b)
		run(b, c)
	})
}

// BenchmarkFailoverCalls is the backend calls of 8 moves as the daemon
// makes them over a real backend process, one after the other: per move a
// ConfigureVF of the new VF and a ReleaseVF of the old one (16 calls; 4
// VMs go from pf0 to pf1 and back).
func BenchmarkFailoverCalls(b *testing.B) {
	c := launchBench(b)
	ctx := context.Background()
	cfg := sriov.VFConfig{MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, SpoofChk: true}
	b.ReportAllocs()
	for b.Loop() {
		for i := range 4 {
			if err := c.ConfigureVF(ctx, "pf1", i, cfg); err != nil {
				b.Fatal(err)
			}
			if err := c.ReleaseVF(ctx, "pf0", i); err != nil {
				b.Fatal(err)
			}
			if err := c.ConfigureVF(ctx, "pf0", i, cfg); err != nil {
				b.Fatal(err)
			}
			if err := c.ReleaseVF(ctx, "pf1", i); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func launchBench(b *testing.B) *Client {
	b.Helper()
	cfg, _ := fakeConfig(b, "ok")
	c, err := Launch(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
