package plugin

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// orphanAfter is how long a backend process waits for vflagd to connect
// before it gives up and exits.
const orphanAfter = time.Minute

// Serve serves b as a backend process for vflagd and does not return. A
// backend's main is:
//
//	func main() { plugin.Serve(generic.New(nil)) }
//
// Run by hand (without vflagd's handshake in its environment) it says it
// is a plugin and exits 1. It exits when vflagd closes the connection,
// also when vflagd was killed, so no backend outlives its daemon.
func Serve(b Backend) { serve(b, ProtocolVersion) }

// serve serves b speaking protocol version (tests serve other versions).
func serve(b Backend, version int) {
	w := &orphanWatch{exit: func() { os.Exit(0) }}
	w.arm(orphanAfter)
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: pluginSets(b, version),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.StatsHandler(w))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
	})
}

// orphanWatch ends the backend process once its last connection is gone
// (vflagd closed it or died), or when none came within the time armed.
type orphanWatch struct {
	exit func()

	// mu guards conns, seen and timer.
	mu    sync.Mutex
	conns int
	seen  bool
	timer *time.Timer
}

var _ stats.Handler = (*orphanWatch)(nil)

func (w *orphanWatch) arm(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(d, func() {
		w.mu.Lock()
		idle := !w.seen
		w.mu.Unlock()
		if idle {
			w.exit()
		}
	})
}

// TagConn implements stats.Handler.
func (w *orphanWatch) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler: it counts connections.
func (w *orphanWatch) HandleConn(_ context.Context, s stats.ConnStats) {
	w.mu.Lock()
	switch s.(type) {
	case *stats.ConnBegin:
		w.conns++
		w.seen = true
		if w.timer != nil {
			w.timer.Stop()
		}
	case *stats.ConnEnd:
		w.conns--
	}
	gone := w.seen && w.conns == 0
	w.mu.Unlock()
	if gone {
		w.exit()
	}
}

// TagRPC implements stats.Handler.
func (w *orphanWatch) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC implements stats.Handler.
func (w *orphanWatch) HandleRPC(context.Context, stats.RPCStats) {}
