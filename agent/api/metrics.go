package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// Metrics are the agent's Prometheus metrics, kept and written in the text
// exposition format by github.com/VictoriaMetrics/metrics (small, no
// protobuf runtime, Prometheus-compatible; client_golang is the reference).
// The names are stable: dashboards and alerts use them (the test lists them).
type Metrics struct {
	set *vm.Set

	mu           sync.Mutex
	members      map[string]int
	phase        string // the label value of the one tfsite_phase sample
	allocated    bool
	asn          uint32
	gossipHealth int
	insecure     bool
	commit       *vm.PrometheusHistogram
}

// memberStates are the label values of tfsite_members.
var memberStates = []string{StateAlive, StateSuspect, StateDead, StateLeft}

// commitBuckets are tfsite_allocation_commit_seconds' upper bounds.
var commitBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// ContentType is the exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// NewMetrics creates the metrics.
func NewMetrics() *Metrics {
	vm.ExposeMetadata(true) // # TYPE lines, which Prometheus needs for histograms
	m := &Metrics{set: vm.NewSet(), members: map[string]int{}}
	for _, s := range memberStates {
		m.set.NewGauge(fmt.Sprintf(`tfsite_members{state=%q}`, s), func() float64 { return m.read(func() float64 { return float64(m.members[s]) }) })
	}
	m.set.NewGauge("tfsite_allocated", func() float64 { return m.read(func() float64 { return b2f(m.allocated) }) })
	m.set.NewGauge("tfsite_asn", func() float64 { return m.read(func() float64 { return float64(m.asn) }) })
	m.set.NewGauge("tfsite_gossip_health_score", func() float64 { return m.read(func() float64 { return float64(m.gossipHealth) }) })
	m.set.NewGauge("tfsite_insecure", func() float64 { return m.read(func() float64 { return b2f(m.insecure) }) })
	m.commit = m.set.NewPrometheusHistogramExt("tfsite_allocation_commit_seconds", commitBuckets)
	return m
}

func (m *Metrics) read(f func() float64) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f()
}

// Update sets the gauges from a status snapshot.
func (m *Metrics) Update(st Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.members)
	for _, p := range st.Peers {
		m.members[p.State]++
	}
	if st.Phase != m.phase {
		// One sample, for the current phase: the old one goes.
		if m.phase != "" {
			m.set.UnregisterMetric(phaseMetric(m.phase))
		}
		if st.Phase != "" {
			m.set.GetOrCreateGauge(phaseMetric(st.Phase), nil).Set(1)
		}
		m.phase = st.Phase
	}
	m.allocated, m.asn = st.Allocation != nil, 0
	if st.Allocation != nil {
		m.asn = st.Allocation.ASN
	}
	m.gossipHealth = st.GossipHealth
	m.insecure = st.Insecure
}

// labelEscaper escapes a label value as the exposition format wants.
var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func phaseMetric(phase string) string {
	return `tfsite_phase{phase="` + labelEscaper.Replace(phase) + `"}`
}

// ObserveCommit records how long obtaining the allocation took.
func (m *Metrics) ObserveCommit(d time.Duration) { m.commit.Update(d.Seconds()) }

// Write writes every metric: the agent's, then the Go runtime's and the
// process's under client_golang's names (go_*, process_*).
func (m *Metrics) Write(w io.Writer) {
	m.set.WritePrometheus(w)
	vm.WriteProcessMetrics(w)
	vm.WriteFDMetrics(w)
}

// MetricsServer serves GET /metrics on a listener: Run serves, Close stops
// (safe twice).
type MetricsServer struct {
	*httpServer
}

// NewMetricsServer serves m on ln. refresh, if set, updates the gauges
// before each scrape: they follow the status per scrape, not per event,
// because with hundreds of peers a status snapshot is not free.
func NewMetricsServer(ln net.Listener, m *Metrics, refresh func(context.Context), log *slog.Logger) *MetricsServer {
	rt := route{"GET /metrics", func(r *http.Request) reply {
		if refresh != nil {
			refresh(r.Context())
		}
		var b bytes.Buffer
		m.Write(&b)
		return reply{code: 200, contentType: ContentType, body: b.Bytes()}
	}}
	return &MetricsServer{newHTTPServer(ln, newHandler([]route{rt}), log, nil)}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
