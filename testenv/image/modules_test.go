package image

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
)

const sampleDep = `kernel/drivers/net/ethernet/intel/igb/igb.ko.xz: kernel/drivers/dca/dca.ko.xz kernel/drivers/i2c/algos/i2c-algo-bit.ko.xz
kernel/drivers/dca/dca.ko.xz:
kernel/drivers/i2c/algos/i2c-algo-bit.ko.xz:
kernel/drivers/net/bonding/bonding.ko.xz: kernel/net/tls/tls.ko.xz
kernel/net/tls/tls.ko.xz:
kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko.xz: kernel/drivers/infiniband/core/ib_uverbs.ko.xz kernel/net/ipv6/ip6_udp_tunnel.ko.xz kernel/net/ipv4/udp_tunnel.ko.xz kernel/drivers/infiniband/core/ib_core.ko.xz
kernel/drivers/infiniband/core/ib_uverbs.ko.xz: kernel/drivers/infiniband/core/ib_core.ko.xz
kernel/drivers/infiniband/core/ib_core.ko.xz:
kernel/net/ipv6/ip6_udp_tunnel.ko.xz:
kernel/net/ipv4/udp_tunnel.ko.xz:
kernel/net/8021q/8021q.ko.xz: kernel/net/802/garp.ko.xz
kernel/net/802/garp.ko.xz:
`

func TestLoadOrder(t *testing.T) {
	deps, err := ParseModulesDep(strings.NewReader(sampleDep))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"bonding"}, "tls bonding"},
		{[]string{"igb", "bonding"}, "i2c_algo_bit dca igb tls bonding"},
		{[]string{"rdma_rxe"}, "ib_core udp_tunnel ip6_udp_tunnel ib_uverbs rdma_rxe"},
		{[]string{"rdma-rxe", "ib_core"}, "ib_core udp_tunnel ip6_udp_tunnel ib_uverbs rdma_rxe"},
		{[]string{"8021q", "garp"}, "garp 8021q"},
	} {
		files, err := deps.LoadOrder(tc.names...)
		if err != nil {
			t.Fatalf("%v: %v", tc.names, err)
		}
		var got []string
		for _, f := range files {
			got = append(got, ModuleName(f))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("LoadOrder(%v) = %q, want %q", tc.names, strings.Join(got, " "), tc.want)
		}
	}
}

func TestLoadOrderErrors(t *testing.T) {
	deps, err := ParseModulesDep(strings.NewReader("a.ko: b.ko\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = deps.LoadOrder("a")
	if err == nil || !strings.Contains(err.Error(), "module b (needed by a)") {
		t.Errorf("missing dependency: got %v", err)
	}
	_, err = deps.LoadOrder("nosuch")
	if err == nil || !strings.Contains(err.Error(), "module nosuch is not in modules.dep") {
		t.Errorf("missing module: got %v", err)
	}
	if _, err := ParseModulesDep(strings.NewReader("garbage line\n")); err == nil ||
		!strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad line: got %v", err)
	}
}

func TestFetchKernelUnknownPackage(t *testing.T) {
	if _, err := exec.LookPath("apt-cache"); err != nil {
		t.Skip("needs apt-cache (Debian)")
	}
	_, err := FetchKernel(context.Background(), t.TempDir(), "linux-image-0.0.0-nosuch", slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "linux-image-0.0.0-nosuch") {
		t.Errorf("FetchKernel(unknown) = %v, want ErrNoKernel naming the package", err)
	}
}
