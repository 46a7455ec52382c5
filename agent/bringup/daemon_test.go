package bringup

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/peering"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/internal/testrig"
)

// agentBackend plays the agent behind a real API server (unix socket): the
// daemon sees only what crosses the socket.
type agentBackend struct {
	mu       sync.Mutex
	st       api.Status
	bgp      []site.BGPPeer
	statuses int
}

func (b *agentBackend) Status(context.Context) api.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.statuses++
	return b.st
}
func (b *agentBackend) Peers(context.Context) []api.Peer { return nil }
func (b *agentBackend) BGPPeers(context.Context) ([]site.BGPPeer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bgp, nil
}
func (b *agentBackend) Release(context.Context, string) error { return api.ErrNotFound }

func (b *agentBackend) set(f func(*agentBackend)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

// waitReport polls the report the agent would serve until ok accepts it.
func waitReport(t *testing.T, stateDir, what string, ok func(*api.BringUp) bool) *api.BringUp {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := api.ReadBringUp(stateDir)
		if err == nil && b != nil && ok(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last report %+v (%v)", what, b, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemonFollowsTheAgentAndReports: the daemon waits while the agent has
// no allocation, is woken (not by its hour-long ticker) once the agent's
// status has one, and writes every outcome where the agent serves it.
func TestDaemonFollowsTheAgentAndReports(t *testing.T) {
	backend := &agentBackend{st: api.Status{Site: "alpha", Phase: "requesting", Underlay: &api.Underlay{Interface: "eth0", Address: "192.168.50.10/24", Gateway: "192.168.50.1"}}}
	sock := testrig.ServeAPI(t, backend)

	cfg := config.Default()
	cfg.Site, cfg.StateDir, cfg.APISocket = "alpha", t.TempDir(), sock
	cfg.BringUp.Enabled = true
	cfg.BringUp.Preflight.Skip = true
	cfg.BringUp.Kubeconfig = filepath.Join(cfg.StateDir, "admin.conf") // absent: kubeadm init runs
	cfg.BringUp.Kubeadm = "/bin/false"
	cfg.BringUp.Interval = config.Duration(time.Hour)
	d, err := NewDaemon(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), WithPoll(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		d.Close()
		d.Close()
	}()

	// The first pass may run before the agent's first answer ("not answered
	// yet"); once it answered, the report names what is missing.
	rep := waitReport(t, cfg.StateDir, "waiting report naming the allocation", func(b *api.BringUp) bool {
		return b.Phase == PhaseWaiting && !b.Updated.IsZero() && strings.Contains(b.Waiting, "allocation")
	})
	if !strings.Contains(rep.Waiting, "tfsite status --allocated") {
		t.Fatalf("waiting report %+v: want what it waits for and how to watch it", rep)
	}

	backend.set(func(b *agentBackend) {
		b.st.Phase = "allocated"
		b.st.Allocation = &api.Allocation{ASN: 64601, Pod: netip.MustParsePrefix("10.40.0.0/16"), Service: netip.MustParsePrefix("10.41.0.0/16"), Fabric: netip.MustParsePrefix("10.42.0.0/16")}
	})
	rep = waitReport(t, cfg.StateDir, "kubeadm failure report", func(b *api.BringUp) bool { return b.Phase == PhaseFailed })
	if !strings.Contains(rep.Error, "kubeadm init") || len(rep.Steps) == 0 || rep.Steps[0].Name != StepParams || !rep.Steps[0].OK ||
		!strings.Contains(rep.Steps[0].Detail, "ASN 64601") {
		t.Fatalf("report %+v: want params from the agent's allocation, then the kubeadm init failure", rep)
	}

	// Peers through the API; an unreachable agent is an error, not "no peers".
	backend.set(func(b *agentBackend) {
		b.bgp = []site.BGPPeer{{Site: "beta", ASN: 64602, Address: netip.MustParseAddr("192.168.51.10")}}
	})
	peers, err := d.src.Peers(t.Context())
	if err != nil || len(peers) != 1 || peers[0].Site != "beta" || peers[0].ASN != 64602 || peers[0].Address != netip.MustParseAddr("192.168.51.10") {
		t.Fatalf("Peers = %+v, %v", peers, err)
	}
	down := &apiSource{client: api.NewClient(filepath.Join(t.TempDir(), "none.sock"))}
	if _, err := down.Peers(t.Context()); !errors.Is(err, api.ErrAgentDown) {
		t.Fatalf("Peers with the agent down: err = %v, want ErrAgentDown", err)
	}
}

func TestNewDaemonRefusesDisabledBringUp(t *testing.T) {
	cfg := config.Default()
	cfg.Site, cfg.StateDir = "alpha", t.TempDir()
	if _, err := NewDaemon(cfg, nil); !errors.Is(err, ErrDisabled) || !strings.Contains(err.Error(), "bringUp.enabled") {
		t.Fatalf("err = %v, want ErrDisabled naming bringUp.enabled", err)
	}
}

func TestSiteFromStatus(t *testing.T) {
	al := &api.Allocation{ASN: 64601, Pod: netip.MustParsePrefix("10.40.0.0/16"), Service: netip.MustParsePrefix("10.41.0.0/16"), Fabric: netip.MustParsePrefix("10.42.0.0/16")}
	under := &api.Underlay{Interface: "eth0", Address: "192.168.50.10/24", Gateway: "192.168.50.1"}
	p, err := SiteFromStatus(api.Status{Site: "alpha", Allocation: al, Underlay: under})
	if err != nil || p.Site != "alpha" || p.ASN != 64601 || p.Pod != al.Pod || p.Service != al.Service || p.Fabric != al.Fabric ||
		p.AdvertiseAddress != netip.MustParseAddr("192.168.50.10") || p.Gateway != netip.MustParseAddr("192.168.50.1") || p.PhysicalInterface != "eth0" {
		t.Fatalf("params %+v, %v", p, err)
	}
	for name, tc := range map[string]struct {
		st      api.Status
		is      []error
		mention string
	}{
		"no allocation":     {api.Status{Site: "alpha", Phase: "allocating", Underlay: under}, []error{peering.ErrNotAllocated}, `phase allocating`},
		"no underlay":       {api.Status{Site: "alpha", Allocation: al}, []error{ErrNoUnderlay}, "yet"},
		"underlay disabled": {api.Status{Site: "alpha", Allocation: al, Underlay: &api.Underlay{Disabled: true}}, []error{ErrNoUnderlay}, "discovery is off"},
		"no gateway":        {api.Status{Site: "alpha", Allocation: al, Underlay: &api.Underlay{Interface: "eth0", Address: "192.168.50.10/24"}}, []error{ErrNoUnderlay}, `gateway ""`},
		"bare address":      {api.Status{Site: "alpha", Allocation: al, Underlay: &api.Underlay{Interface: "eth0", Address: "192.168.50.10", Gateway: "192.168.50.1"}}, []error{ErrNoUnderlay}, `address "192.168.50.10"`},
		"nothing yet":       {api.Status{Site: "alpha", Phase: "joining"}, []error{peering.ErrNotAllocated, ErrNoUnderlay}, "joining"},
		"conflict":          {api.Status{Site: "alpha", Phase: api.PhaseConflict, LastError: "held by beta", Allocation: al, Underlay: under}, []error{ErrAllocationConflict}, "held by beta"},
	} {
		p, err := SiteFromStatus(tc.st)
		for _, want := range tc.is {
			if !errors.Is(err, want) {
				t.Errorf("%s: err = %v, want %v", name, err, want)
			}
		}
		if err == nil || !strings.Contains(err.Error(), tc.mention) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %q, want one line mentioning %q", name, err, tc.mention)
		}
		// What the status does hold is kept: render fills the rest from flags.
		if p.Site != "alpha" || (tc.st.Allocation != nil && p.ASN != al.ASN) {
			t.Errorf("%s: partial params %+v lost what the status holds", name, p)
		}
	}
	// The partial underlay is kept too.
	if p, _ := SiteFromStatus(api.Status{Site: "alpha", Allocation: al, Underlay: &api.Underlay{Interface: "eth0", Address: "192.168.50.10/24"}}); p.PhysicalInterface != "eth0" || p.AdvertiseAddress != netip.MustParseAddr("192.168.50.10") {
		t.Errorf("partial underlay: params %+v", p)
	}
}

// TestWakeKeyIgnoresGossipChurn: a pass is woken when the allocation, the
// underlay or the BGP peers change, not for gossip state or version churn.
func TestWakeKeyIgnoresGossipChurn(t *testing.T) {
	b := api.Peer{Site: "b", State: api.StateAlive, Underlay: "192.0.2.2", Allocation: &api.Allocation{ASN: 64513}}
	noAlloc := api.Peer{Site: "c", State: api.StateAlive, Underlay: "192.0.2.3"}
	st := api.Status{Site: "a", Allocation: &api.Allocation{ASN: 64512}, Peers: []api.Peer{b, noAlloc}}
	base := wakeKey(st)
	if !strings.Contains(base, "peer b 192.0.2.2 64513") || strings.Contains(base, "peer c") {
		t.Fatalf("key %q: want only the peer holding an allocation", base)
	}
	churn := st
	churn.Phase, churn.GossipHealth = "allocated", 3
	cb := b
	cb.State, cb.Version = api.StateSuspect, "v2"
	churn.Peers = []api.Peer{cb, noAlloc}
	if k := wakeKey(churn); k != base {
		t.Fatalf("gossip churn changed the key: %q", k)
	}
	moved := st
	mb := b
	mb.Underlay = "192.0.2.9"
	moved.Peers = []api.Peer{mb}
	if wakeKey(moved) == base {
		t.Fatal("a peer's new address did not change the key")
	}
	renumbered := st
	renumbered.Allocation = &api.Allocation{ASN: 64599}
	if wakeKey(renumbered) == base {
		t.Fatal("this site's new allocation did not change the key")
	}
}
