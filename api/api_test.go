package api

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/internal/privtest"
	"github.com/vflag/vflag/vfmgr"
)

// fakeBackend records the calls it gets as text and fails on request.
type fakeBackend struct {
	calls  []string
	err    error
	events chan *vflagpb.Event
}

func (f *fakeBackend) Status(context.Context) (*vflagpb.StatusResponse, error) {
	f.calls = append(f.calls, "status")
	return &vflagpb.StatusResponse{Bonds: []*vflagpb.Bond{{Name: "bond0", Active: "pf0"}}}, f.err
}

func (f *fakeBackend) ListVMs(_ context.Context, vm string) ([]*vflagpb.VMInterface, error) {
	f.calls = append(f.calls, "list "+vm)
	return []*vflagpb.VMInterface{{Vm: "vm1", Mac: "52:54:00:00:00:01", Pf: "pf0", Vf: 3}}, f.err
}

func (f *fakeBackend) Attach(_ context.Context, r *vflagpb.AttachRequest) (*vflagpb.VMInterface, error) {
	f.calls = append(f.calls, fmt.Sprintf("attach %s %s vlan %d", r.GetVm(), r.GetMac(), r.GetVlan()))
	if f.err != nil {
		return nil, f.err
	}
	return &vflagpb.VMInterface{Vm: r.GetVm(), Mac: r.GetMac(), Pf: "pf0", Vf: 1}, nil
}

func (f *fakeBackend) Detach(_ context.Context, vm, iface string) ([]*vflagpb.VMInterface, error) {
	f.calls = append(f.calls, "detach "+vm+" "+iface)
	return nil, f.err
}

func (f *fakeBackend) Failover(_ context.Context, bond, to string) (*vflagpb.FailoverResponse, error) {
	f.calls = append(f.calls, "failover "+bond+" "+to)
	return &vflagpb.FailoverResponse{Bond: "bond0", From: "pf0", To: to}, f.err
}

func (f *fakeBackend) Subscribe() (<-chan *vflagpb.Event, func()) {
	return f.events, func() {}
}

func serve(t *testing.T, b Backend) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vflag.sock")
	s, err := Listen(SocketConfig{Path: path, Group: "nosuchgroup-vflag"}, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(s.Stop)
	return path
}

func TestRoundTrip(t *testing.T) {
	privtest.Root(t) // the socket admits root and the API group only
	fb := &fakeBackend{events: make(chan *vflagpb.Event, 1)}
	c, err := Dial(serve(t, fb))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if r, err := c.Status(ctx, &vflagpb.StatusRequest{}); err != nil || r.GetBonds()[0].GetActive() != "pf0" {
		t.Errorf("Status = %v, %v", r, err)
	}
	if r, err := c.ListVMs(ctx, &vflagpb.ListVMsRequest{Vm: "vm1"}); err != nil || r.GetInterfaces()[0].GetVf() != 3 {
		t.Errorf("ListVMs = %v, %v", r, err)
	}
	if r, err := c.Attach(ctx, &vflagpb.AttachRequest{Vm: "vm1", Mac: "52:54:00:00:00:01", Vlan: 100}); err != nil || r.GetIface().GetPf() != "pf0" {
		t.Errorf("Attach = %v, %v", r, err)
	}
	if _, err := c.Detach(ctx, &vflagpb.DetachRequest{Vm: "vm1"}); err != nil {
		t.Errorf("Detach: %v", err)
	}
	if r, err := c.Failover(ctx, &vflagpb.FailoverRequest{Bond: "bond0", To: "pf1"}); err != nil || r.GetTo() != "pf1" {
		t.Errorf("Failover = %v, %v", r, err)
	}
	stream, err := c.Events(ctx, &vflagpb.EventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fb.events <- &vflagpb.Event{Kind: "failover", Bond: "bond0"}
	if ev, err := stream.Recv(); err != nil || ev.GetKind() != "failover" {
		t.Errorf("Events: %v, %v", ev, err)
	}
	want := "status|list vm1|attach vm1 52:54:00:00:00:01 vlan 100|detach vm1 |failover bond0 pf1"
	if got := strings.Join(fb.calls, "|"); got != want {
		t.Errorf("backend calls:\n got %s\nwant %s", got, want)
	}

	// Bad input is refused before the backend sees it.
	if _, err := c.Attach(ctx, &vflagpb.AttachRequest{Vm: "vm1"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("attach without MAC: %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	privtest.Root(t) // the socket admits root and the API group only
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("bond0 (pf0 7/7 used, pf1 7/7 used): %w", vfmgr.ErrNoFreeVF), codes.ResourceExhausted},
		{fmt.Errorf("vm vm9: %w", vfmgr.ErrNotManaged), codes.NotFound},
		{fmt.Errorf("52:54:00:00:00:01 held by vm2: %w", vfmgr.ErrDuplicateMAC), codes.AlreadyExists},
		{fmt.Errorf("vlan 5000: %w", ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("netlink exploded"), codes.Internal},
	} {
		fb := &fakeBackend{err: tc.err}
		c, err := Dial(serve(t, fb))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Attach(context.Background(), &vflagpb.AttachRequest{Vm: "vm1", Mac: "52:54:00:00:00:01"})
		c.Close()
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.err.Error()) {
			t.Errorf("backend error %q reached the client as %v, want code %v with the message", tc.err, err, tc.code)
		}
	}
}

func TestAuthorize(t *testing.T) {
	for _, tc := range []struct {
		p    Peer
		ok   bool
		name string
	}{
		{Peer{UID: 0, GID: 0}, true, "root"},
		{Peer{UID: 1000, GID: 108}, true, "primary group"},
		{Peer{UID: 1000, GID: 1000, Groups: []int{27, 108}}, true, "supplementary group"},
		{Peer{UID: 1000, GID: 1000, Groups: []int{27}, PID: 42}, false, "other user"},
	} {
		err := Authorize(tc.p, 108, "libvirt")
		if (err == nil) != tc.ok {
			t.Errorf("%s: Authorize(%v) = %v", tc.name, tc.p, err)
		}
		if err != nil && !strings.Contains(err.Error(), "neither root nor in group libvirt") {
			t.Errorf("%s: reason %q", tc.name, err)
		}
	}
	if gs, err := parseGroups(" 4 24 27\t108"); err != nil || fmt.Sprint(gs) != "[4 24 27 108]" {
		t.Errorf("parseGroups = %v, %v", gs, err)
	}
}

const asNobodyEnv = "VFLAG_API_TEST_SOCKET"

func TestMain(m *testing.M) {
	if path := os.Getenv(asNobodyEnv); path != "" {
		// Runs as nobody: report what the API says.
		c, err := Dial(path)
		if err == nil {
			_, err = c.Status(context.Background(), &vflagpb.StatusRequest{})
		}
		fmt.Print(status.Code(err), ": ", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRefusesOtherUsers: a caller that is neither root nor in the group is
// refused with a reason, even when the socket's mode would let it connect.
func TestRefusesOtherUsers(t *testing.T) {
	privtest.Root(t)
	dir, err := os.MkdirTemp("", "vflag-api-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vflag.sock")
	s, err := Listen(SocketConfig{Path: path, Group: "nosuchgroup-vflag"}, &fakeBackend{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	defer s.Stop()
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	// nobody cannot reach the test binary in go's private build directory.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	exe = filepath.Join(dir, "api.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), asNobodyEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v: %s", err, out)
	}
	if !strings.HasPrefix(string(out), "PermissionDenied") || !strings.Contains(string(out), "neither root nor in group nosuchgroup-vflag") {
		t.Errorf("nobody got %q, want PermissionDenied with the reason", out)
	}
}
