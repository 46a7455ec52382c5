package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Metrics are the agent's Prometheus metrics, served in Prometheus's text
// exposition format (version 0.0.4). They are written here rather than
// through prometheus/client_golang: that library and the protobuf runtime it
// links cost every agent process ~2 MB RSS, and the agent must stay within
// 15 MB (docs/benchmarks.md). The tests parse the output with Prometheus's
// own parser (expfmt).
type Metrics struct {
	mu           sync.Mutex
	members      map[string]int
	phase        string
	allocated    bool
	asn          uint32
	gossipHealth int
	insecure     bool
	commit       histogram
}

// memberStates are the label values of tfsite_members.
var memberStates = []string{StateAlive, StateSuspect, StateDead, StateLeft}

// commitBuckets are tfsite_allocation_commit_seconds' upper bounds.
var commitBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// ContentType is the exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// histogram is a cumulative Prometheus histogram.
type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

// NewMetrics creates the metrics.
func NewMetrics() *Metrics {
	return &Metrics{members: map[string]int{}, commit: histogram{counts: make([]uint64, len(commitBuckets))}}
}

// Update sets the gauges from a status snapshot.
func (m *Metrics) Update(st Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.members)
	for _, p := range st.Peers {
		m.members[p.State]++
	}
	m.phase = st.Phase
	m.allocated, m.asn = st.Allocation != nil, 0
	if st.Allocation != nil {
		m.asn = st.Allocation.ASN
	}
	m.gossipHealth = st.GossipHealth
	m.insecure = st.Insecure
}

// ObserveCommit records how long obtaining the allocation took.
func (m *Metrics) ObserveCommit(d time.Duration) {
	v := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, le := range commitBuckets {
		if v <= le {
			m.commit.counts[i]++
			break
		}
	}
	m.commit.sum += v
	m.commit.count++
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
	rt := route{"GET", "/metrics", func(ctx context.Context, _ []string) reply {
		if refresh != nil {
			refresh(ctx)
		}
		var b bytes.Buffer
		if err := m.Write(&b); err != nil {
			return errorReply(500, fmt.Sprintf("writing metrics: %v", err))
		}
		return reply{code: 200, contentType: ContentType, body: b.Bytes()}
	}}
	return &MetricsServer{newHTTPServer(ln, []route{rt}, log, nil)}
}

// Write writes every metric in the text exposition format.
func (m *Metrics) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	e := expo{w: bw}
	m.mu.Lock()
	e.family("tfsite_members", "gauge", "Peer sites known through gossip, by state (this site excluded).")
	for _, s := range memberStates {
		e.sample("tfsite_members", "state", s, float64(m.members[s]))
	}
	e.family("tfsite_phase", "gauge", "1 for the agent's current phase (needs-configuration, discovering, requesting, allocated, no-quorum, ...).")
	if m.phase != "" {
		e.sample("tfsite_phase", "phase", m.phase, 1)
	}
	e.family("tfsite_allocated", "gauge", "1 when this site holds a committed allocation.")
	e.sample("tfsite_allocated", "", "", b2f(m.allocated))
	e.family("tfsite_asn", "gauge", "This site's allocated BGP ASN (0 before allocation).")
	e.sample("tfsite_asn", "", "", float64(m.asn))
	e.family("tfsite_gossip_health_score", "gauge", "memberlist awareness score: 0 is healthy, higher means degraded.")
	e.sample("tfsite_gossip_health_score", "", "", float64(m.gossipHealth))
	e.family("tfsite_insecure", "gauge", "1 when the agent runs without a gossip key (insecure: true): its allocator accepts anyone.")
	e.sample("tfsite_insecure", "", "", b2f(m.insecure))
	e.family("tfsite_allocation_commit_seconds", "histogram", "Time from start of membership until this site held a committed allocation.")
	var cum uint64
	for i, le := range commitBuckets {
		cum += m.commit.counts[i]
		e.sample("tfsite_allocation_commit_seconds_bucket", "le", strconv.FormatFloat(le, 'g', -1, 64), float64(cum))
	}
	e.sample("tfsite_allocation_commit_seconds_bucket", "le", "+Inf", float64(m.commit.count))
	e.sample("tfsite_allocation_commit_seconds_sum", "", "", m.commit.sum)
	e.sample("tfsite_allocation_commit_seconds_count", "", "", float64(m.commit.count))
	m.mu.Unlock()
	writeProcess(&e)
	if e.err != nil {
		return e.err
	}
	return bw.Flush()
}

// writeProcess writes the Go runtime and process metrics under the names
// client_golang's collectors use, so dashboards need no change.
func writeProcess(e *expo) {
	e.family("go_goroutines", "gauge", "Number of goroutines that currently exist.")
	e.sample("go_goroutines", "", "", float64(runtime.NumGoroutine()))
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	e.family("go_memstats_heap_alloc_bytes", "gauge", "Number of heap bytes allocated and still in use.")
	e.sample("go_memstats_heap_alloc_bytes", "", "", sampleValue(s[0]))
	e.family("go_memstats_sys_bytes", "gauge", "Number of bytes obtained from the system.")
	e.sample("go_memstats_sys_bytes", "", "", sampleValue(s[1]))
	e.family("go_gc_cycles_total", "counter", "Completed GC cycles.")
	e.sample("go_gc_cycles_total", "", "", sampleValue(s[2]))

	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		e.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
		e.sample("process_cpu_seconds_total", "", "", tv(ru.Utime)+tv(ru.Stime))
	}
	if rss, ok := residentBytes(); ok {
		e.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
		e.sample("process_resident_memory_bytes", "", "", float64(rss))
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		e.family("process_open_fds", "gauge", "Number of open file descriptors.")
		e.sample("process_open_fds", "", "", float64(len(fds)))
	}
	e.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
	e.sample("process_start_time_seconds", "", "", float64(processStart.UnixNano())/1e9)
}

// processStart approximates the process start (package initialisation).
var processStart = time.Now()

func sampleValue(s metrics.Sample) float64 {
	switch s.Value.Kind() {
	case metrics.KindUint64:
		return float64(s.Value.Uint64())
	case metrics.KindFloat64:
		return s.Value.Float64()
	}
	return 0
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// residentBytes reads the resident set from /proc/self/statm (Linux).
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// expo writes exposition lines, keeping the first error.
type expo struct {
	w   *bufio.Writer
	err error
}

func (e *expo) family(name, typ, help string) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
	}
}

// sample writes one sample with at most one label (all this agent needs).
func (e *expo) sample(name, label, value string, v float64) {
	if e.err != nil {
		return
	}
	val := strconv.FormatFloat(v, 'g', -1, 64)
	if label == "" {
		_, e.err = fmt.Fprintf(e.w, "%s %s\n", name, val)
		return
	}
	_, e.err = fmt.Fprintf(e.w, "%s{%s=\"%s\"} %s\n", name, label, escapeLabel(value), val)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
