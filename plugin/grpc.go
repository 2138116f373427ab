package plugin

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vflag/vflag/plugin/backendpb"
	"github.com/vflag/vflag/vfmgr"
	"github.com/vflag/vflag/vfmgr/sriov"
)

// ProtocolVersion is the version of the backend protocol (backend.proto
// and the meaning of its calls) this build speaks. vflagd and a backend
// agree on it in go-plugin's handshake; a backend built for another
// version is refused with both versions named.
const ProtocolVersion = 1

// pluginName is the one plugin a backend process serves.
const pluginName = "backend"

// handshake keeps a backend binary from running as anything but
// vflagd's child: go-plugin's Serve refuses to start unless the magic
// cookie is in its environment. It is not a security measure (see
// Config.SHA256 for that).
var handshake = goplugin.HandshakeConfig{
	MagicCookieKey:   "VFLAG_BACKEND_PLUGIN",
	MagicCookieValue: "3f6c0a4e-vflag-nic-backend",
}

// pluginSets is the plugin set for each protocol version in versions;
// impl is nil on the client side.
func pluginSets(impl Backend, versions ...int) map[int]goplugin.PluginSet {
	sets := map[int]goplugin.PluginSet{}
	for _, v := range versions {
		sets[v] = goplugin.PluginSet{pluginName: &grpcPlugin{impl: impl}}
	}
	return sets
}

// grpcPlugin is the go-plugin side of a backend: it registers the gRPC
// server shim in the backend process and returns the client shim in
// vflagd.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	// impl is the served backend (nil in vflagd).
	impl Backend
}

var _ goplugin.GRPCPlugin = (*grpcPlugin)(nil)

// GRPCServer implements goplugin.GRPCPlugin.
func (p *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	backendpb.RegisterBackendServer(s, &grpcServer{b: p.impl})
	return nil
}

// GRPCClient implements goplugin.GRPCPlugin.
func (p *grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &grpcClient{c: backendpb.NewBackendClient(c)}, nil
}

// grpcServer serves a Backend over gRPC in the backend process.
type grpcServer struct {
	backendpb.UnimplementedBackendServer
	b Backend
}

func (s *grpcServer) Info(ctx context.Context, _ *backendpb.InfoRequest) (*backendpb.InfoResponse, error) {
	i, err := s.b.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToPB(i), nil
}

func (s *grpcServer) Probe(ctx context.Context, r *backendpb.BondSpec) (*backendpb.Capabilities, error) {
	c, err := s.b.Probe(ctx, specFromPB(r))
	if err != nil {
		return nil, toStatus(err)
	}
	return capsToPB(c), nil
}

func (s *grpcServer) Preflight(ctx context.Context, r *backendpb.BondSpec) (*backendpb.Findings, error) {
	fs, err := s.b.Preflight(ctx, specFromPB(r))
	if err != nil {
		return nil, toStatus(err)
	}
	return findingsToPB(fs), nil
}

func (s *grpcServer) PrepareBond(ctx context.Context, r *backendpb.BondSpec) (*backendpb.Findings, error) {
	fs, err := s.b.PrepareBond(ctx, specFromPB(r))
	if err != nil {
		return nil, toStatus(err)
	}
	return findingsToPB(fs), nil
}

func (s *grpcServer) PF(ctx context.Context, r *backendpb.PFRequest) (*backendpb.PFResponse, error) {
	pf, err := s.b.PF(ctx, r.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return pfToPB(pf), nil
}

func (s *grpcServer) VFs(ctx context.Context, r *backendpb.VFsRequest) (*backendpb.VFsResponse, error) {
	vfs, err := s.b.VFs(ctx, r.GetPf())
	if err != nil {
		return nil, toStatus(err)
	}
	return vfsToPB(vfs), nil
}

func (s *grpcServer) SetNumVFs(ctx context.Context, r *backendpb.SetNumVFsRequest) (*backendpb.Done, error) {
	if err := s.b.SetNumVFs(ctx, r.GetPf(), int(r.GetCount())); err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.Done{}, nil
}

func (s *grpcServer) ConfigureVF(ctx context.Context, r *backendpb.ConfigureVFRequest) (*backendpb.Done, error) {
	pf, idx, cfg := configureFromPB(r)
	if err := s.b.ConfigureVF(ctx, pf, idx, cfg); err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.Done{}, nil
}

func (s *grpcServer) ReleaseVF(ctx context.Context, r *backendpb.ReleaseVFRequest) (*backendpb.Done, error) {
	if err := s.b.ReleaseVF(ctx, r.GetPf(), int(r.GetIndex())); err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.Done{}, nil
}

func (s *grpcServer) PlanFailover(ctx context.Context, r *backendpb.FailoverRequest) (*backendpb.FailoverPlan, error) {
	p, err := s.b.PlanFailover(ctx, requestFromPB(r))
	if err != nil {
		return nil, toStatus(err)
	}
	return planToPB(p), nil
}

func (s *grpcServer) VerifyFailover(ctx context.Context, r *backendpb.FailoverPlan) (*backendpb.Findings, error) {
	fs, err := s.b.VerifyFailover(ctx, planFromPB(r))
	if err != nil {
		return nil, toStatus(err)
	}
	return findingsToPB(fs), nil
}

// grpcClient is a Backend in vflagd that calls the backend process.
type grpcClient struct {
	c backendpb.BackendClient
}

var _ Backend = (*grpcClient)(nil)

func (c *grpcClient) Info(ctx context.Context) (Info, error) {
	r, err := c.c.Info(ctx, &backendpb.InfoRequest{})
	if err != nil {
		return Info{}, fromStatus(err)
	}
	return infoFromPB(r), nil
}

func (c *grpcClient) Probe(ctx context.Context, spec BondSpec) (Capabilities, error) {
	r, err := c.c.Probe(ctx, specToPB(spec))
	if err != nil {
		return Capabilities{}, fromStatus(err)
	}
	return capsFromPB(r), nil
}

func (c *grpcClient) Preflight(ctx context.Context, spec BondSpec) ([]Finding, error) {
	r, err := c.c.Preflight(ctx, specToPB(spec))
	if err != nil {
		return nil, fromStatus(err)
	}
	return findingsFromPB(r), nil
}

func (c *grpcClient) PrepareBond(ctx context.Context, spec BondSpec) ([]Finding, error) {
	r, err := c.c.PrepareBond(ctx, specToPB(spec))
	if err != nil {
		return nil, fromStatus(err)
	}
	return findingsFromPB(r), nil
}

func (c *grpcClient) PF(ctx context.Context, name string) (vfmgr.PF, error) {
	r, err := c.c.PF(ctx, &backendpb.PFRequest{Name: name})
	if err != nil {
		return vfmgr.PF{}, fromStatus(err)
	}
	return pfFromPB(r), nil
}

func (c *grpcClient) VFs(ctx context.Context, pf string) ([]vfmgr.VF, error) {
	r, err := c.c.VFs(ctx, &backendpb.VFsRequest{Pf: pf})
	if err != nil {
		return nil, fromStatus(err)
	}
	return vfsFromPB(r), nil
}

func (c *grpcClient) SetNumVFs(ctx context.Context, pf string, n int) error {
	_, err := c.c.SetNumVFs(ctx, &backendpb.SetNumVFsRequest{Pf: pf, Count: int32(n)})
	return fromStatus(err)
}

func (c *grpcClient) ConfigureVF(ctx context.Context, pf string, idx int, cfg sriov.VFConfig) error {
	_, err := c.c.ConfigureVF(ctx, configureToPB(pf, idx, cfg))
	return fromStatus(err)
}

func (c *grpcClient) ReleaseVF(ctx context.Context, pf string, idx int) error {
	_, err := c.c.ReleaseVF(ctx, &backendpb.ReleaseVFRequest{Pf: pf, Index: int32(idx)})
	return fromStatus(err)
}

func (c *grpcClient) PlanFailover(ctx context.Context, req FailoverRequest) (FailoverPlan, error) {
	r, err := c.c.PlanFailover(ctx, requestToPB(req))
	if err != nil {
		return FailoverPlan{}, fromStatus(err)
	}
	return planFromPB(r), nil
}

func (c *grpcClient) VerifyFailover(ctx context.Context, plan FailoverPlan) ([]Finding, error) {
	r, err := c.c.VerifyFailover(ctx, planToPB(plan))
	if err != nil {
		return nil, fromStatus(err)
	}
	return findingsFromPB(r), nil
}
