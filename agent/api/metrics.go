package api

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the agent's Prometheus metrics, on their own registry.
type Metrics struct {
	reg           *prometheus.Registry
	members       *prometheus.GaugeVec
	phase         *prometheus.GaugeVec
	allocated     prometheus.Gauge
	asn           prometheus.Gauge
	gossipHealth  prometheus.Gauge
	commitLatency prometheus.Histogram

	mu        sync.Mutex
	lastPhase string
}

// memberStates are the label values of tfsite_members.
var memberStates = []string{StateAlive, StateSuspect, StateDead, StateLeft}

// NewMetrics creates the metrics (with Go runtime and process collectors).
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tfsite_members", Help: "Peer sites known through gossip, by state (this site excluded).",
		}, []string{"state"}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tfsite_phase", Help: "1 for the agent's current phase (needs-configuration, discovering, requesting, allocated, no-quorum, ...).",
		}, []string{"phase"}),
		allocated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tfsite_allocated", Help: "1 when this site holds a committed allocation.",
		}),
		asn: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tfsite_asn", Help: "This site's allocated BGP ASN (0 before allocation).",
		}),
		gossipHealth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tfsite_gossip_health_score", Help: "memberlist awareness score: 0 is healthy, higher means degraded.",
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tfsite_allocation_commit_seconds",
			Help:    "Time from start of membership until this site held a committed allocation.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
	}
	m.reg.MustRegister(m.members, m.phase, m.allocated, m.asn, m.gossipHealth, m.commitLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Update sets the gauges from a status snapshot.
func (m *Metrics) Update(st Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := map[string]int{}
	for _, p := range st.Peers {
		counts[p.State]++
	}
	for _, s := range memberStates {
		m.members.WithLabelValues(s).Set(float64(counts[s]))
	}
	if m.lastPhase != "" && m.lastPhase != st.Phase {
		m.phase.DeleteLabelValues(m.lastPhase)
	}
	m.phase.WithLabelValues(st.Phase).Set(1)
	m.lastPhase = st.Phase
	if st.Allocation != nil {
		m.allocated.Set(1)
		m.asn.Set(float64(st.Allocation.ASN))
	} else {
		m.allocated.Set(0)
		m.asn.Set(0)
	}
	m.gossipHealth.Set(float64(st.GossipHealth))
}

// ObserveCommit records how long obtaining the allocation took.
func (m *Metrics) ObserveCommit(d time.Duration) { m.commitLatency.Observe(d.Seconds()) }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return mux
}
