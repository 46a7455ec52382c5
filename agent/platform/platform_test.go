package platform_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/platform"
	"github.com/tfsite/tfsite/internal/testrig"
)

func reader(t *testing.T, name, endpoint string, mod ...func(*platform.Config)) *platform.Reader {
	t.Helper()
	cfg := platform.Default()
	cfg.Platform, cfg.Endpoint, cfg.Timeout = name, endpoint, 2*time.Second
	for _, m := range mod {
		m(&cfg)
	}
	r, err := platform.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// imdsV1 is an instance metadata service that knows no session tokens.
func imdsV1() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/latest/dynamic/instance-identity/document", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"instanceId":"i-0123","region":"eu-west-1","availabilityZone":"eu-west-1a"}`)
	})
	mux.HandleFunc("/latest/user-data", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "tfsite: {site: old}\n") })
	return mux
}

func TestIMDSv1IsRefusedUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(imdsV1())
	defer srv.Close()
	if d, err := reader(t, "aws", srv.URL).Read(context.Background()); err != nil || d != nil {
		t.Fatalf("IMDSv1-only service read as %+v, %v; want nothing (IMDSv2 required)", d, err)
	}
	d, err := reader(t, "aws", srv.URL, func(c *platform.Config) { c.AllowIMDSv1 = true }).Read(context.Background())
	if err != nil || d == nil || d.InstanceID != "i-0123" || string(d.UserData) != "tfsite: {site: old}\n" {
		t.Fatalf("with IMDSv1 allowed: %+v, %v", d, err)
	}
}

func TestUserDataOverItsLimitIsBadInput(t *testing.T) {
	big := strings.Repeat("#", config.MaxUserData+1)
	for _, name := range []string{"hetzner", "gcp"} {
		srv := httptest.NewServer(testrig.MetadataServer(name, testrig.Instance{ID: "42", Zone: "z-1", UserData: big}))
		if name == "gcp" {
			t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(srv.URL, "http://"))
		}
		_, err := reader(t, name, srv.URL).Read(context.Background())
		srv.Close()
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "1 MiB") {
			t.Errorf("%s: user-data over 1 MiB: %v; want invalid input naming the limit", name, err)
		}
	}
}

func TestAzureCustomDataMustBeBase64(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/metadata/instance", testrig.MetadataServer("azure", testrig.Instance{ID: "vm-1", Region: "westeurope"}))
	mux.HandleFunc("/metadata/instance/compute/customData", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "not base64!") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if _, err := reader(t, "azure", srv.URL).Read(context.Background()); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "base64") {
		t.Fatalf("%v; want invalid input: not base64", err)
	}
}

func TestReadKeepsAnAnswerAndRetriesAFailure(t *testing.T) {
	var hits atomic.Int32
	var up atomic.Bool
	h := testrig.MetadataServer("hetzner", testrig.Instance{ID: "7", Zone: "hel1-dc2", Region: "eu-central"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	var notices []string
	cfg := platform.Default()
	cfg.Platform, cfg.Endpoint, cfg.Timeout = "hetzner", srv.URL, time.Second
	r, err := platform.New(cfg, slog.New(slog.DiscardHandler), func(l string) { notices = append(notices, l) })
	if err != nil {
		t.Fatal(err)
	}
	if d, err := r.Read(context.Background()); d != nil || err != nil || len(notices) != 1 || !strings.Contains(notices[0], "did not answer within 1s") {
		t.Fatalf("service down: %+v, %v, notices %q", d, err, notices)
	}
	up.Store(true)
	d, err := r.Read(context.Background())
	if err != nil || d == nil || d.InstanceID != "7" {
		t.Fatalf("service up: %+v, %v", d, err)
	}
	n := hits.Load()
	if d2, _ := r.Read(context.Background()); d2 != d || hits.Load() != n {
		t.Fatalf("the answer was read again (%d → %d requests)", n, hits.Load())
	}
}

func TestConfigRefusesAnUnknownPlatform(t *testing.T) {
	cfg := platform.Default()
	cfg.Platform, cfg.Endpoint = "digitalocean", "169.254.169.254"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `platform "digitalocean"`) || !strings.Contains(err.Error(), "metadata endpoint") {
		t.Fatalf("%v; want both problems", err)
	}
}
