package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// overGRPC serves b with go-plugin's in-memory gRPC pair and returns the
// client side: what vflagd calls.
func overGRPC(t testing.TB, b Backend) Backend {
	t.Helper()
	client, server := goplugin.TestPluginGRPCConn(t, false, goplugin.PluginSet{pluginName: &grpcPlugin{impl: b}})
	t.Cleanup(func() {
		// Close asks the server to stop (go-plugin's controller).
		_ = client.Close()
		select {
		case <-server.DoneCh:
		case <-time.After(10 * time.Second):
			t.Error("the in-memory plugin server did not stop")
		}
	})
	raw, err := client.Dispense(pluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(Backend)
}

// classes are the error classes whose survival the contract tests check.
func classes() []error {
	var out []error
	for _, s := range sentinels() {
		out = append(out, s.err)
	}
	return append(out, syscall.ENODEV, syscall.ENOENT)
}

// TestContractRoundTrip calls every method, with good and bad arguments,
// on one fake directly and on an identical fake across gRPC, and checks
// that vflagd sees the same results: equal values, equal error messages,
// the same error classes (errors.Is) and, for the transport, the code of
// the class.
func TestContractRoundTrip(t *testing.T) {
	direct, remote := newFake("generic", ""), overGRPC(t, newFake("generic", ""))
	spec := BondSpec{Bond: "bond0", Ports: [2]string{"pf0", "pf1"}, VFsPerPF: 4, Mode: ModeSoftware}
	hw := spec
	hw.Mode = ModeHardware
	odd := spec
	odd.Bond, odd.Mode = "bond9", "turbo"
	mac := net.HardwareAddr{0x52, 0x54, 0, 0xab, 0, 2}
	req := FailoverRequest{Bond: "bond0", From: "pf0", To: "pf1", VFs: []vfmgr.VFRef{{PF: "pf0", Index: 0}, {PF: "pf0", Index: 1}, {PF: "pf0", Index: 2}}}
	plan := FailoverPlan{Bond: "bond0", From: "pf0", To: "pf1", Hardware: []vfmgr.VFRef{{PF: "pf0", Index: 0}}, Software: []vfmgr.VFRef{{PF: "pf0", Index: 1}}}
	type result struct {
		v   any
		err error
	}
	calls := []struct {
		name string
		call func(context.Context, Backend) (any, error)
		// code is the gRPC code the error must carry (OK: no error).
		code codes.Code
	}{
		{"Info", func(ctx context.Context, b Backend) (any, error) { return b.Info(ctx) }, codes.OK},
		{"Probe", func(ctx context.Context, b Backend) (any, error) { return b.Probe(ctx, spec) }, codes.OK},
		{"Probe unknown bond", func(ctx context.Context, b Backend) (any, error) { return b.Probe(ctx, odd) }, codes.NotFound},
		{"Preflight", func(ctx context.Context, b Backend) (any, error) { return b.Preflight(ctx, spec) }, codes.OK},
		{"Preflight unknown mode", func(ctx context.Context, b Backend) (any, error) { return b.Preflight(ctx, odd) }, codes.OK},
		{"PrepareBond", func(ctx context.Context, b Backend) (any, error) { return b.PrepareBond(ctx, spec) }, codes.OK},
		{"PrepareBond hardware", func(ctx context.Context, b Backend) (any, error) { return b.PrepareBond(ctx, hw) }, codes.Unimplemented},
		{"PF", func(ctx context.Context, b Backend) (any, error) { return b.PF(ctx, "pf0") }, codes.OK},
		{"PF missing", func(ctx context.Context, b Backend) (any, error) { return b.PF(ctx, "pf9") }, codes.Unknown},
		{"VFs", func(ctx context.Context, b Backend) (any, error) { return b.VFs(ctx, "pf0") }, codes.OK},
		{"VFs missing", func(ctx context.Context, b Backend) (any, error) { return b.VFs(ctx, "pf9") }, codes.Unknown},
		{"SetNumVFs", func(ctx context.Context, b Backend) (any, error) { return nil, b.SetNumVFs(ctx, "pf0", 4) }, codes.OK},
		{"SetNumVFs too many", func(ctx context.Context, b Backend) (any, error) { return nil, b.SetNumVFs(ctx, "pf0", 99) }, codes.InvalidArgument},
		{"ConfigureVF", func(ctx context.Context, b Backend) (any, error) {
			return nil, b.ConfigureVF(ctx, "pf1", 2, sriov.VFConfig{MAC: mac, VLAN: 100, QoS: 2, SpoofChk: true})
		}, codes.OK},
		{"VFs after ConfigureVF", func(ctx context.Context, b Backend) (any, error) { return b.VFs(ctx, "pf1") }, codes.OK},
		{"ConfigureVF bad VLAN", func(ctx context.Context, b Backend) (any, error) {
			return nil, b.ConfigureVF(ctx, "pf1", 2, sriov.VFConfig{MAC: mac, VLAN: 5000})
		}, codes.Unknown},
		{"ConfigureVF missing VF", func(ctx context.Context, b Backend) (any, error) {
			return nil, b.ConfigureVF(ctx, "pf0", 9, sriov.VFConfig{MAC: mac})
		}, codes.NotFound},
		{"ReleaseVF", func(ctx context.Context, b Backend) (any, error) { return nil, b.ReleaseVF(ctx, "pf0", 1) }, codes.OK},
		{"VFs after ReleaseVF", func(ctx context.Context, b Backend) (any, error) { return b.VFs(ctx, "pf0") }, codes.OK},
		{"ReleaseVF missing PF", func(ctx context.Context, b Backend) (any, error) { return nil, b.ReleaseVF(ctx, "pf9", 1) }, codes.Unknown},
		{"PlanFailover", func(ctx context.Context, b Backend) (any, error) { return b.PlanFailover(ctx, req) }, codes.OK},
		{"PlanFailover nothing in use", func(ctx context.Context, b Backend) (any, error) {
			return b.PlanFailover(ctx, FailoverRequest{Bond: "bond0", From: "pf1", To: "pf0"})
		}, codes.OK},
		{"VerifyFailover", func(ctx context.Context, b Backend) (any, error) { return b.VerifyFailover(ctx, plan) }, codes.OK},
		{"VerifyFailover other bond", func(ctx context.Context, b Backend) (any, error) {
			return b.VerifyFailover(ctx, FailoverPlan{Bond: "bond9"})
		}, codes.FailedPrecondition},
	}
	ctx := context.Background()
	for _, c := range calls {
		var want, got result
		want.v, want.err = c.call(ctx, direct)
		got.v, got.err = c.call(ctx, remote)
		if (want.err == nil) != (c.code == codes.OK) {
			t.Fatalf("%s: the fake answered %v; the test expects code %s", c.name, want.err, c.code)
		}
		if !reflect.DeepEqual(got.v, want.v) {
			t.Errorf("%s over gRPC:\n got %#v\nwant %#v", c.name, got.v, want.v)
		}
		if want.err == nil {
			if got.err != nil {
				t.Errorf("%s over gRPC: %v, want no error", c.name, got.err)
			}
			continue
		}
		if got.err == nil || got.err.Error() != want.err.Error() {
			t.Errorf("%s over gRPC: error %v, want %q", c.name, got.err, want.err)
			continue
		}
		for _, class := range classes() {
			if errors.Is(got.err, class) != errors.Is(want.err, class) {
				t.Errorf("%s over gRPC: errors.Is(%q, %v) = %t, want %t", c.name, got.err, class, errors.Is(got.err, class), errors.Is(want.err, class))
			}
		}
		if code := status.Code(got.err); code != c.code {
			t.Errorf("%s over gRPC: code %s, want %s", c.name, code, c.code)
		}
		if re := (*RemoteError)(nil); !errors.As(got.err, &re) || !re.FromBackend {
			t.Errorf("%s over gRPC: %#v is not a RemoteError from the backend", c.name, got.err)
		}
	}
}

// waitingBackend answers ConfigureVF only when its context ends.
type waitingBackend struct{ *fakeBackend }

func (w waitingBackend) ConfigureVF(ctx context.Context, pf string, idx int, _ sriov.VFConfig) error {
	<-ctx.Done()
	return fmt.Errorf("configure %s vf %d: %w", pf, idx, ctx.Err())
}

// TestContractDeadlineCrosses checks that the caller's deadline reaches
// the backend: a backend that honours its context stops, and the caller
// sees context.DeadlineExceeded.
func TestContractDeadlineCrosses(t *testing.T) {
	remote := overGRPC(t, waitingBackend{newFake("generic", "")})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := remote.ConfigureVF(ctx, "pf0", 1, sriov.VFConfig{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ConfigureVF past its deadline: %v, want context.DeadlineExceeded", err)
	}
}

// TestErrorCodec checks the wire form of errors that no fake call makes:
// an errno, several classes at once, and a peer's error without detail.
func TestErrorCodec(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		is   []error
	}{
		{fmt.Errorf("open /sys/class/net/pf0/device/sriov_numvfs: %w", syscall.EBUSY), codes.Unknown, []error{syscall.EBUSY}},
		{fmt.Errorf("read: %w", syscall.ENOENT), codes.NotFound, []error{syscall.ENOENT}},
		{fmt.Errorf("vf 3: %w: %w", vfmgr.ErrInvalid, syscall.EPERM), codes.InvalidArgument, []error{vfmgr.ErrInvalid, syscall.EPERM}},
		{fmt.Errorf("pf0: %w", sriov.ErrNoSRIOV), codes.FailedPrecondition, []error{sriov.ErrNoSRIOV}},
		{errors.New("plain"), codes.Unknown, nil},
	}
	for _, tc := range tests {
		got := fromStatus(toStatus(tc.err))
		if got.Error() != tc.err.Error() || status.Code(got) != tc.code {
			t.Errorf("%q came back as %q, code %s; want code %s", tc.err, got, status.Code(got), tc.code)
		}
		for _, class := range tc.is {
			if !errors.Is(got, class) {
				t.Errorf("%q came back as %q, which does not wrap %v", tc.err, got, class)
			}
		}
	}
	// A transport error (no detail) keeps its class.
	got := fromStatus(status.Error(codes.DeadlineExceeded, "context deadline exceeded"))
	if re := (*RemoteError)(nil); !errors.Is(got, context.DeadlineExceeded) || !errors.As(got, &re) || re.FromBackend {
		t.Errorf("a bare DeadlineExceeded status came back as %#v; want a RemoteError not from the backend, wrapping context.DeadlineExceeded", got)
	}
}
