package daemon

import (
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are vflagd's Prometheus metrics. A nil *Metrics counts nothing.
type Metrics struct {
	reg         *prometheus.Registry
	failovers   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	moved       *prometheus.CounterVec
	unplaced    *prometheus.CounterVec
	frames      *prometheus.CounterVec
	vfsUsed     *prometheus.GaugeVec
	vfsFree     *prometheus.GaugeVec
	portCarrier *prometheus.GaugeVec
	rdmaHealthy *prometheus.GaugeVec
	rdmaRenum   *prometheus.CounterVec
}

// NewMetrics registers vflagd's metrics in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vflag_failovers_total", Help: "Failover plans executed, per bond.",
		}, []string{"bond"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vflag_failover_duration_seconds", Help: "From bond event to every VM re-homed (announcements excluded).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"bond"}),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vflag_vm_moves_total", Help: "VM interfaces re-homed to another VF.",
		}, []string{"bond"}),
		unplaced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vflag_vm_unplaceable_total", Help: "VM interfaces a failover could not move.",
		}, []string{"bond"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vflag_frames_announced_total", Help: "GARP, NA and RARP frames sent on behalf of VMs.",
		}, []string{"pf"}),
		vfsUsed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vflag_vfs_used", Help: "VFs held by VMs, per PF.",
		}, []string{"bond", "pf"}),
		vfsFree: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vflag_vfs_free", Help: "VFs vflag may still hand out, per PF.",
		}, []string{"bond", "pf"}),
		portCarrier: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vflag_port_carrier", Help: "1 when the PF has carrier.",
		}, []string{"bond", "pf"}),
		rdmaHealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vflag_rdma_healthy", Help: "1 when the bond's RDMA device was healthy at the last check after a failover.",
		}, []string{"bond"}),
		rdmaRenum: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vflag_rdma_gid_renumbered_total", Help: "Failovers after which the bond's RDMA GIDs had new indexes (open RDMA connections failed).",
		}, []string{"bond"}),
	}
	m.reg.MustRegister(m.failovers, m.duration, m.moved, m.unplaced, m.frames, m.vfsUsed, m.vfsFree, m.portCarrier, m.rdmaHealthy, m.rdmaRenum,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Serve serves /metrics on addr until the listener fails.
func (m *Metrics) Serve(addr string) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	return func() { _ = srv.Close() }, nil
}

// Gather exposes the registry, for tests.
func (m *Metrics) Gather() prometheus.Gatherer { return m.reg }

func (m *Metrics) failover(bond string, took time.Duration, moved int) {
	if m == nil {
		return
	}
	m.failovers.WithLabelValues(bond).Inc()
	m.duration.WithLabelValues(bond).Observe(took.Seconds())
	m.moved.WithLabelValues(bond).Add(float64(moved))
}

func (m *Metrics) unplaceable(bond string) {
	if m != nil {
		m.unplaced.WithLabelValues(bond).Inc()
	}
}

func (m *Metrics) rdmaChecked(bond string, healthy, renumbered bool) {
	if m == nil {
		return
	}
	v := 0.0
	if healthy {
		v = 1
	}
	m.rdmaHealthy.WithLabelValues(bond).Set(v)
	if renumbered {
		m.rdmaRenum.WithLabelValues(bond).Inc()
	}
}

func (m *Metrics) announced(pf string, frames int) {
	if m != nil {
		m.frames.WithLabelValues(pf).Add(float64(frames))
	}
}

// publishGauges sets the per-PF gauges from the state. d.mu is held.
func (d *Daemon) publishGauges() {
	m := d.opts.Metrics
	if m == nil {
		return
	}
	for _, b := range d.state.Bonds() {
		for _, p := range b.Ports {
			m.vfsUsed.WithLabelValues(b.Bond, p.PF).Set(float64(p.Used))
			m.vfsFree.WithLabelValues(b.Bond, p.PF).Set(float64(p.Total - p.Used))
			c := 0.0
			if p.Carrier {
				c = 1
			}
			m.portCarrier.WithLabelValues(b.Bond, p.PF).Set(c)
		}
	}
}
