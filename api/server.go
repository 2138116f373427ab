package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/vflag/vflag/api/vflagpb"
	"github.com/vflag/vflag/vfmgr"
)

// DefaultSocket is where vflagd listens.
const DefaultSocket = "/run/vflag/vflag.sock"

// Backend is what the API serves: vflagd's VF manager.
type Backend interface {
	Status(ctx context.Context) (*vflagpb.StatusResponse, error)
	ListVMs(ctx context.Context, vm string) ([]*vflagpb.VMInterface, error)
	Attach(ctx context.Context, req *vflagpb.AttachRequest) (*vflagpb.VMInterface, error)
	Detach(ctx context.Context, vm, iface string) ([]*vflagpb.VMInterface, error)
	Failover(ctx context.Context, bond, to string) (*vflagpb.FailoverResponse, error)
	// Subscribe streams events until cancel is called.
	Subscribe() (events <-chan *vflagpb.Event, cancel func())
}

// SocketConfig says where and for whom the socket is.
type SocketConfig struct {
	// Path of the socket (default DefaultSocket).
	Path string
	// Group may call besides root (default "libvirt"); the socket is
	// root:Group 0660. A group that does not exist leaves root only.
	Group string
}

// Server serves Backend on a Unix socket.
type Server struct {
	backend Backend
	log     *slog.Logger
	grpc    *grpc.Server
	lis     net.Listener
	path    string
}

// Listen creates the socket (replacing a stale one) with its owner and
// mode and returns a server ready to Serve.
func Listen(cfg SocketConfig, backend Backend, log *slog.Logger) (*Server, error) {
	if cfg.Path == "" {
		cfg.Path = DefaultSocket
	}
	if cfg.Group == "" {
		cfg.Group = "libvirt"
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, fmt.Errorf("api socket directory: %w", err)
	}
	if err := removeStale(cfg.Path); err != nil {
		return nil, err
	}
	lis, err := net.Listen("unix", cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", cfg.Path, err)
	}
	gid := lookupGroup(cfg.Group)
	if gid >= 0 {
		if err := os.Chown(cfg.Path, 0, gid); err != nil {
			lis.Close()
			return nil, fmt.Errorf("api socket %s: chown root:%s: %w", cfg.Path, cfg.Group, err)
		}
	} else {
		log.Warn("API group does not exist; only root may use the API", "group", cfg.Group)
	}
	if err := os.Chmod(cfg.Path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("api socket %s: %w", cfg.Path, err)
	}
	unary, stream := authInterceptors(gid, cfg.Group)
	s := &Server{
		backend: backend, log: log, lis: lis, path: cfg.Path,
		grpc: grpc.NewServer(grpc.Creds(peerCreds{}), grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream)),
	}
	vflagpb.RegisterVflagServer(s.grpc, &service{b: backend})
	return s, nil
}

// removeStale removes a socket file nobody listens on.
func removeStale(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api socket %s: %w", path, err)
	}
	if st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("api socket %s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("api socket %s: another vflagd is listening", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale api socket %s: %w", path, err)
	}
	return nil
}

// Serve serves until Stop.
func (s *Server) Serve() error { return s.grpc.Serve(s.lis) }

// Stop ends open streams, stops serving and removes the socket.
func (s *Server) Stop() {
	s.grpc.Stop()
	os.Remove(s.path)
}

// service adapts Backend to the generated interface.
type service struct {
	vflagpb.UnimplementedVflagServer
	b Backend
}

func (v *service) Status(ctx context.Context, _ *vflagpb.StatusRequest) (*vflagpb.StatusResponse, error) {
	r, err := v.b.Status(ctx)
	return r, toStatus(err)
}

func (v *service) ListVMs(ctx context.Context, req *vflagpb.ListVMsRequest) (*vflagpb.ListVMsResponse, error) {
	ifs, err := v.b.ListVMs(ctx, req.GetVm())
	if err != nil {
		return nil, toStatus(err)
	}
	return &vflagpb.ListVMsResponse{Interfaces: ifs}, nil
}

func (v *service) Attach(ctx context.Context, req *vflagpb.AttachRequest) (*vflagpb.AttachResponse, error) {
	if req.GetVm() == "" || req.GetMac() == "" {
		return nil, status.Error(codes.InvalidArgument, "attach needs a vm and a mac")
	}
	i, err := v.b.Attach(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &vflagpb.AttachResponse{Iface: i}, nil
}

func (v *service) Detach(ctx context.Context, req *vflagpb.DetachRequest) (*vflagpb.DetachResponse, error) {
	if req.GetVm() == "" {
		return nil, status.Error(codes.InvalidArgument, "detach needs a vm")
	}
	rel, err := v.b.Detach(ctx, req.GetVm(), req.GetIface())
	if err != nil {
		return nil, toStatus(err)
	}
	return &vflagpb.DetachResponse{Released: rel}, nil
}

func (v *service) Failover(ctx context.Context, req *vflagpb.FailoverRequest) (*vflagpb.FailoverResponse, error) {
	if req.GetTo() == "" {
		return nil, status.Error(codes.InvalidArgument, "failover needs the port to make active")
	}
	r, err := v.b.Failover(ctx, req.GetBond(), req.GetTo())
	return r, toStatus(err)
}

func (v *service) Events(_ *vflagpb.EventsRequest, stream grpc.ServerStreamingServer[vflagpb.Event]) error {
	events, cancel := v.b.Subscribe()
	defer cancel()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// toStatus maps vflagd's sentinel errors to gRPC codes, keeping the message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, vfmgr.ErrNoFreeVF):
		code = codes.ResourceExhausted
	case errors.Is(err, vfmgr.ErrNotManaged):
		code = codes.NotFound
	case errors.Is(err, vfmgr.ErrDuplicateMAC):
		code = codes.AlreadyExists
	case errors.Is(err, vfmgr.ErrVFHeld), errors.Is(err, vfmgr.ErrAllocated):
		// The VF, or the interface, is taken: by another VM, or with
		// other settings. The message names the holder.
		code = codes.FailedPrecondition
	case errors.Is(err, ErrInvalid), errors.Is(err, vfmgr.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

// ErrInvalid marks a backend error caused by the caller's input.
var ErrInvalid = errors.New("invalid request")

// Client is a connection to vflagd.
type Client struct {
	vflagpb.VflagClient
	conn *grpc.ClientConn
}

// Dial connects to vflagd's socket. Calls fail fast when vflagd is down.
func Dial(path string) (*Client, error) {
	if path == "" {
		path = DefaultSocket
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("vflagd at %s: %w", path, err)
	}
	return &Client{VflagClient: vflagpb.NewVflagClient(conn), conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
