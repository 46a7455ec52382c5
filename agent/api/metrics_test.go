package api

import (
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape serves m with a MetricsServer, fetches it with Go's HTTP client
// and parses the answer with Prometheus's own text parser, as a Prometheus
// server would.
func scrape(t *testing.T, m *Metrics) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewMetricsServer(ln, m, nil, slog.New(slog.DiscardHandler))
	go srv.Run(t.Context())
	t.Cleanup(func() { srv.Close() })
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" || params["version"] != "0.0.4" {
		t.Fatalf("Content-Type %q: want text/plain; version=0.0.4", resp.Header.Get("Content-Type"))
	}
	b, _ := io.ReadAll(resp.Body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("Prometheus's parser rejects the exposition: %v\n%s", err, b)
	}
	return fams, string(b)
}

// gauge returns the value of name's sample with label=value ("" for none).
func gauge(t *testing.T, fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric family %s", name)
	}
	for _, m := range f.GetMetric() {
		if label == "" && len(m.GetLabel()) == 0 {
			return metricValue(m)
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return metricValue(m)
			}
		}
	}
	t.Fatalf("%s{%s=%q} not exported", name, label, value)
	return 0
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return -1
}

func TestMetricsParseAsPrometheusExposition(t *testing.T) {
	m := NewMetrics()
	m.Update(Status{Phase: "requesting"})
	m.Update(sampleStatus())
	m.ObserveCommit(1500e6)
	m.ObserveCommit(200e9) // above every bucket: only +Inf counts it
	fams, text := scrape(t, m)

	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"tfsite_members", "state", "alive", 1}, {"tfsite_members", "state", "dead", 1}, {"tfsite_members", "state", "suspect", 0},
		{"tfsite_phase", "phase", "allocated", 1}, {"tfsite_allocated", "", "", 1}, {"tfsite_asn", "", "", 64513},
		{"tfsite_gossip_health_score", "", "", 0}, {"tfsite_insecure", "", "", 0},
	} {
		if got := gauge(t, fams, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
	if strings.Contains(text, `phase="requesting"`) {
		t.Error("old phase still exported")
	}
	insecure := sampleStatus()
	insecure.Insecure = true
	m.Update(insecure)
	if fams, _ := scrape(t, m); gauge(t, fams, "tfsite_insecure", "", "") != 1 {
		t.Error("an agent without a key does not export tfsite_insecure 1")
	}
	m.Update(sampleStatus())
	h := fams["tfsite_allocation_commit_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM || len(h.GetMetric()) != 1 {
		t.Fatalf("commit latency family: %v", h)
	}
	hist := h.GetMetric()[0].GetHistogram()
	if hist.GetSampleCount() != 2 || hist.GetSampleSum() != 201.5 {
		t.Fatalf("histogram count %d sum %v, want 2 and 201.5", hist.GetSampleCount(), hist.GetSampleSum())
	}
	for _, b := range hist.GetBucket() {
		want := uint64(0)
		switch ub := b.GetUpperBound(); {
		case math.IsInf(ub, 1):
			want = 2
		case ub >= 2.5:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if g := gauge(t, fams, "go_goroutines", "", ""); g < 1 {
		t.Errorf("go_goroutines %v", g)
	}
	if rss := gauge(t, fams, "process_resident_memory_bytes", "", ""); rss < 1<<20 {
		t.Errorf("process_resident_memory_bytes %v: implausibly small", rss)
	}
	for _, name := range []string{"process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

func TestMetricsEscapeLabelValues(t *testing.T) {
	m := NewMetrics()
	odd := "no-\"quorum\"\\\nnext"
	m.Update(Status{Phase: odd})
	fams, _ := scrape(t, m)
	if got := gauge(t, fams, "tfsite_phase", "phase", odd); got != 1 {
		t.Fatalf("phase %q = %v", odd, got)
	}
}
