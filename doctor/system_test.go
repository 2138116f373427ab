package doctor_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vflag/vflag/api"
	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/doctor"
	"github.com/vflag/vflag/internal/nsrun"
	"github.com/vflag/vflag/internal/privtest"
	"github.com/vflag/vflag/vfmgr"
)

func TestExecRunner(t *testing.T) {
	t.Parallel()
	out, err := doctor.ExecRunner{}.Run(context.Background(), "sh", "-c", "echo libvirtd 11.3.0")
	if err != nil || out != "libvirtd 11.3.0\n" {
		t.Errorf("Run(sh) = %q, %v", out, err)
	}
	if _, err := (doctor.ExecRunner{}).Run(context.Background(), "vflag-no-such-program"); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("Run of a missing program: %v, want exec.ErrNotFound", err)
	}
	if _, err := (doctor.ExecRunner{}).Run(context.Background(), "sh", "-c", "echo broken >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("Run of a failing program: %v, want its exit and output", err)
	}
}

// daemon is an api.Backend with one bond and one VM interface.
type daemon struct{}

func (daemon) Status(context.Context) (*vflagpb.StatusResponse, error) {
	return &vflagpb.StatusResponse{Bonds: []*vflagpb.Bond{{Name: "bond0", Active: "pf1"}}}, nil
}

func (daemon) ListVMs(context.Context, string) ([]*vflagpb.VMInterface, error) {
	return []*vflagpb.VMInterface{{Vm: "vm1", Pf: "pf1", Vf: 3, Trust: true}}, nil
}

func (daemon) Attach(context.Context, *vflagpb.AttachRequest) (*vflagpb.VMInterface, error) {
	return nil, errors.New("not here")
}

func (daemon) Detach(context.Context, string, string) ([]*vflagpb.VMInterface, error) {
	return nil, errors.New("not here")
}

func (daemon) Failover(context.Context, string, string) (*vflagpb.FailoverResponse, error) {
	return nil, errors.New("not here")
}

func (daemon) Subscribe() (<-chan *vflagpb.Event, func()) { return nil, func() {} }

// APIVflagd asks a real API server; a missing socket and a socket nobody
// listens on are ErrNotRunning. Root: the API admits root and its group.
func TestAPIVflagd(t *testing.T) {
	privtest.Root(t)
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := (doctor.APIVflagd{}).Probe(ctx, filepath.Join(dir, "none.sock")); !errors.Is(err, doctor.ErrNotRunning) {
		t.Errorf("no socket: %v, want ErrNotRunning", err)
	}

	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := (doctor.APIVflagd{}).Probe(ctx, stale); !errors.Is(err, doctor.ErrNotRunning) || !strings.Contains(err.Error(), "nothing listens") {
		t.Errorf("stale socket: %v, want ErrNotRunning (nothing listens)", err)
	}

	path := filepath.Join(dir, "vflag.sock")
	s, err := api.Listen(api.SocketConfig{Path: path, Group: "nosuchgroup-vflag"}, daemon{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(s.Stop)
	got, err := doctor.APIVflagd{}.Probe(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	want := doctor.DaemonState{
		Bonds: []doctor.DaemonBond{{Name: "bond0", Active: "pf1"}},
		InUse: []doctor.InUseVF{{VF: vfmgr.VFRef{PF: "pf1", Index: 3}, VM: "vm1", Trust: true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Probe = %+v, want %+v", got, want)
	}
}

// HostNIC over a real kernel: ethtool on a veth in a fresh namespace;
// devlink and VFs of what is not an SR-IOV PCI function are errors.
func TestHostNIC(t *testing.T) {
	name, path := privtest.Netns(t)
	if out, err := exec.Command("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	n := &doctor.HostNIC{}
	ctx := context.Background()
	var info doctor.DriverInfo
	var flagsErr, vfsErr error
	err := nsrun.Do(path, func() error {
		var err error
		info, err = n.DriverInfo(ctx, "v0")
		_, flagsErr = n.PrivFlags(ctx, "v0")
		_, vfsErr = n.VFs(ctx, "v0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.Driver != "veth" {
		t.Errorf("DriverInfo(v0) = %+v, want driver veth", info)
	}
	if flagsErr != nil {
		t.Errorf("PrivFlags(v0): %v (a veth has none, which is no error)", flagsErr)
	}
	if vfsErr == nil {
		t.Errorf("VFs of a veth: no error")
	}
	if _, err := n.EswitchMode(ctx, "0000:ff:1f.7"); err == nil || !strings.Contains(err.Error(), "pci/0000:ff:1f.7") {
		t.Errorf("EswitchMode of no device: %v, want an error naming it", err)
	}
}
