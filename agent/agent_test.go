package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/site"
)

// lab is a set of in-process sites on loopback addresses 127.N.M.x, each
// with its own state dir and API socket; tests talk to them over the API.
type lab struct {
	t      *testing.T
	dir    string
	net    string // "127.N.M."
	key    string
	voters []string
	sites  map[string]*testSite
}

type testSite struct {
	name   string
	cfg    config.Config
	agent  *Agent
	cancel context.CancelFunc
	done   chan error
}

func newLab(t *testing.T, voters ...string) *lab {
	t.Helper()
	// Short paths: unix socket names are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "tfsa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(rand.N(256))
	}
	l := &lab{
		t: t, dir: dir, voters: voters, sites: map[string]*testSite{},
		net: fmt.Sprintf("127.%d.%d.", 100+rand.N(100), rand.N(250)),
		key: base64.StdEncoding.EncodeToString(key),
	}
	t.Cleanup(l.stopAll)
	return l
}

func testLogger(t *testing.T, name string) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("site", name)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// config returns the config of site number i (address 127.N.M.i).
func (l *lab) config(name string, i int) config.Config {
	c := config.Default()
	c.Site = name
	c.Voters = l.voters
	c.Gossip.BindAddress = fmt.Sprintf("%s%d", l.net, i)
	c.Gossip.Key = l.key
	c.Gossip.Profile = "local"
	c.Gossip.RejoinInterval = config.Duration(time.Second)
	c.Gossip.Seeds = []string{l.net + "1"}
	c.Allocator.RetryInterval = config.Duration(300 * time.Millisecond)
	c.StateDir = filepath.Join(l.dir, name)
	c.APISocket = filepath.Join(l.dir, name+".sock")
	c.MetricsAddress = ""
	c.Underlay.Disabled = true
	return c
}

func (l *lab) start(name string, i int) *testSite {
	l.t.Helper()
	return l.startConfig(l.config(name, i))
}

func (l *lab) startConfig(cfg config.Config, opts ...Option) *testSite {
	l.t.Helper()
	a, err := New(cfg, testLogger(l.t, cfg.Site), opts...)
	if err != nil {
		l.t.Fatalf("New(%s): %v", cfg.Site, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testSite{name: cfg.Site, cfg: cfg, agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Run(ctx) }()
	l.sites[cfg.Site] = s
	return s
}

func (l *lab) stop(name string) {
	l.t.Helper()
	s := l.sites[name]
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			l.t.Errorf("Run(%s) = %v", name, err)
		}
	case <-time.After(15 * time.Second):
		l.t.Errorf("Run(%s) did not return within 15s of cancel", name)
	}
	s.agent.Close()
	s.agent.Close() // twice is safe
	delete(l.sites, name)
}

func (l *lab) stopAll() {
	for name := range l.sites {
		l.stop(name)
	}
}

func (l *lab) status(name string) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return api.NewClient(l.sites[name].cfg.APISocket).Status(ctx)
}

// waitAll waits until every running site holds an allocation and sees every
// other running site alive with its allocation; it returns the statuses.
func (l *lab) waitAll(timeout time.Duration) map[string]api.Status {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		all, ok := map[string]api.Status{}, true
		for name := range l.sites {
			st, err := l.status(name)
			if err != nil {
				ok, last = false, err.Error()
				break
			}
			all[name] = st
			if st.Allocation == nil {
				ok, last = false, fmt.Sprintf("%s: phase %s, error %q", name, st.Phase, st.LastError)
				break
			}
			seen := 0
			for _, p := range st.Peers {
				if _, running := l.sites[p.Site]; running && p.State == api.StateAlive && p.Allocation != nil {
					seen++
				}
			}
			if seen != len(l.sites)-1 {
				ok, last = false, fmt.Sprintf("%s sees %d of %d peers alive with allocations", name, seen, len(l.sites)-1)
				break
			}
		}
		if ok {
			return all
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.t.Fatalf("sites did not converge in %s: %s", timeout, last)
	return nil
}

// checkDisjoint asserts that the statuses hold no duplicate ASN or
// overlapping prefix, and that every site's own view matches what its peers
// see of it.
func checkDisjoint(t *testing.T, all map[string]api.Status) {
	t.Helper()
	var allocs []site.Allocation
	for name, st := range all {
		a := st.Allocation
		allocs = append(allocs, site.Allocation{Site: name, ASN: a.ASN, Pod: a.Pod, Service: a.Service, Fabric: a.Fabric})
		for _, p := range st.Peers {
			if other, ok := all[p.Site]; ok && p.Allocation != nil && *p.Allocation != *other.Allocation {
				t.Errorf("%s sees %s holding %+v, but %s holds %+v", name, p.Site, *p.Allocation, p.Site, *other.Allocation)
			}
		}
	}
	if err := site.CheckDisjoint(allocs); err != nil {
		t.Fatalf("allocations collide:\n%v", err)
	}
}

func testSites(t *testing.T, voters ...string) {
	l := newLab(t, voters...)
	names := []string{"site-a", "site-b", "site-c"}
	for i, n := range names {
		l.start(n, i+1)
	}
	all := l.waitAll(60 * time.Second)
	checkDisjoint(t, all)
	for _, n := range names {
		if st := all[n]; len(st.Problems) > 0 {
			t.Errorf("%s reports problems: %q", n, st.Problems)
		}
		if st := all[n]; st.Phase != api.PhaseAllocated || st.Voter != (strings.Contains(strings.Join(voters, ","), n)) {
			t.Errorf("%s: phase %q voter %v", n, st.Phase, st.Voter)
		}
	}
	// A restart never renumbers: stop a non-first site and start it again.
	before := *all["site-c"].Allocation
	l.stop("site-c")
	l.start("site-c", 3)
	after := l.waitAll(60 * time.Second)
	if got := *after["site-c"].Allocation; got != before {
		t.Fatalf("site-c renumbered across restart: %+v -> %+v", before, got)
	}
	checkDisjoint(t, after)
}

func TestThreeSitesOneVoter(t *testing.T) { testSites(t, "site-a") }

func TestThreeSitesThreeVoters(t *testing.T) { testSites(t, "site-a", "site-b", "site-c") }

func TestReleaseDepartedSite(t *testing.T) {
	l := newLab(t, "site-a")
	l.start("site-a", 1)
	l.start("site-b", 2)
	l.start("site-c", 3)
	all := l.waitAll(60 * time.Second)
	c := api.NewClient(l.sites["site-a"].cfg.APISocket)
	ctx := context.Background()
	if err := c.Release(ctx, "site-b"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("releasing a live site: %v, want ErrConflict", err)
	}
	if err := c.Release(ctx, "site-a"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("releasing the local site: %v, want ErrConflict", err)
	}
	if err := c.Release(ctx, "nosuch"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("releasing an unknown site: %v, want ErrNotFound", err)
	}
	gone := *all["site-c"].Allocation
	l.stop("site-c")
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Release(ctx, "site-c")
		if err == nil {
			break
		}
		if !errors.Is(err, api.ErrConflict) || time.Now().After(deadline) {
			t.Fatalf("releasing departed site-c: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := c.Release(ctx, "site-c"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second release: %v, want ErrNotFound", err)
	}
	// The freed values may now be given to a new site; it must not collide
	// with the live ones.
	l.start("site-d", 4)
	checkDisjoint(t, l.waitAll(60*time.Second))
	_ = gone
}

// A fleet changes its gossip key without a split, one site restarted at a
// time: the new key is added as a second key everywhere, made primary
// everywhere, then the old key is removed. After every restart all sites see
// each other with their allocations (gossip and the allocator endpoint, where
// each restarted site re-asserts its allocation, both take the ring) and none
// renumbers; at the end a node holding only the old key is refused.
func TestGossipKeyRotation(t *testing.T) {
	l := newLab(t, "site-a")
	names := []string{"site-a", "site-b", "site-c"}
	for i, n := range names {
		l.start(n, i+1)
	}
	before := l.waitAll(60 * time.Second)
	oldKey := l.key
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(rand.N(256))
	}
	newKey := base64.StdEncoding.EncodeToString(k)
	for step, ring := range []string{oldKey + "," + newKey, newKey + "," + oldKey, newKey} {
		for i, n := range names {
			l.stop(n)
			cfg := l.config(n, i+1)
			cfg.Gossip.Key = ring
			l.startConfig(cfg)
			all := l.waitAll(60 * time.Second)
			for _, m := range names {
				if got, want := *all[m].Allocation, *before[m].Allocation; got != want {
					t.Fatalf("step %d, after restarting %s: %s holds %+v, held %+v", step+1, n, m, got, want)
				}
			}
		}
	}
	cfg := l.config("site-d", 4)
	cfg.Gossip.Key = oldKey
	l.startConfig(cfg)
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		st, err := l.status("site-d")
		if err != nil {
			continue
		}
		for _, p := range st.Peers {
			if p.State == api.StateAlive {
				t.Fatalf("site-d, holding only the retired key, sees %s alive", p.Site)
			}
		}
		if st.Allocation != nil {
			t.Fatalf("site-d, holding only the retired key, got an allocation: %+v", *st.Allocation)
		}
	}
	st, err := l.status("site-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Peers {
		if p.Site == "site-d" {
			t.Fatalf("site-a lists site-d (%s), which holds only the retired key", p.State)
		}
	}
	l.stop("site-d")
}

// TestInsecureLabSaysSo: a lab run without a gossip key (insecure: true)
// still allocates, over the Noise channel without a fleet key, and every
// site says so in status (a flag and a problem), as it logs it.
func TestInsecureLabSaysSo(t *testing.T) {
	l := newLab(t, "site-a")
	for i, n := range []string{"site-a", "site-b"} {
		cfg := l.config(n, i+1)
		cfg.Gossip.Key, cfg.Insecure = "", true
		l.startConfig(cfg)
	}
	all := l.waitAll(60 * time.Second)
	checkDisjoint(t, all)
	for name, st := range all {
		if !st.Insecure || !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.HasPrefix(p, "insecure:") }) {
			t.Errorf("%s: insecure %v, problems %q", name, st.Insecure, st.Problems)
		}
	}
}

func TestNeedsConfigurationUntilReload(t *testing.T) {
	l := newLab(t, "late")
	full := l.config("late", 1)
	waiting := full
	waiting.Site, waiting.Voters = "", nil
	ready := make(chan struct{})
	old := ReloadInterval
	ReloadInterval = 100 * time.Millisecond
	t.Cleanup(func() { ReloadInterval = old })
	l.startConfig(waiting, WithReload(func(context.Context) (config.Loaded, error) {
		select {
		case <-ready:
			return config.Loaded{Config: full, Applied: []string{"test"}}, nil
		default:
			return config.Loaded{Config: waiting}, nil
		}
	}))
	l.sites["late"] = l.sites[""]
	delete(l.sites, "")
	for range 5 {
		st, err := l.status("late")
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase != api.PhaseNeedsConfiguration || st.Site != "" {
			t.Fatalf("unconfigured agent: phase %q site %q, want needs-configuration", st.Phase, st.Site)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(ready)
	st := l.waitAll(30 * time.Second)["late"]
	if st.Site != "late" || st.Allocation == nil || len(st.ConfigSources) != 1 {
		t.Fatalf("after configuration arrived: %+v", st)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	c := config.Default()
	c.Site = "Bad Name"
	c.Gossip.BindPort = -1
	_, err := New(c, nil)
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "site:") || !strings.Contains(err.Error(), "voters:") || !strings.Contains(err.Error(), "gossip.bindPort:") {
		t.Fatalf("New(invalid) = %v", err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	l := newLab(t, "m1")
	cfg := l.config("m1", 1)
	cfg.MetricsAddress = l.net + "1:0"
	s := l.startConfig(cfg)
	l.waitAll(30 * time.Second)
	// The reconcile loop publishes the commit within a pass (≤ 200 ms after
	// status shows it): scrape until it is there.
	want := []string{"tfsite_allocated 1", `tfsite_phase{phase="allocated"} 1`, "tfsite_allocation_commit_seconds_count 1"}
	var missing []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + s.agent.MetricsAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return
		}
	}
	t.Errorf("metrics lack %q", missing)
}

// TestSystemdNotify checks the Type=notify protocol on a real notify socket:
// WATCHDOG=1 pings while the agent runs, and READY=1 only once the site
// holds its allocation.
func TestSystemdNotify(t *testing.T) {
	l := newLab(t, "sd")
	sockPath := filepath.Join(l.dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sockPath)
	t.Setenv("WATCHDOG_USEC", "300000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	s := l.start("sd", 1)
	var ready, watchdog bool
	deadline := time.Now().Add(30 * time.Second)
	buf := make([]byte, 4096)
	for !(ready && watchdog) && time.Now().Before(deadline) {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		msg := string(buf[:n])
		if strings.Contains(msg, "WATCHDOG=1") {
			watchdog = true
		}
		if strings.Contains(msg, "READY=1") {
			ready = true
			if _, ok := s.agent.alloc.Local(); !ok {
				t.Fatal("READY=1 sent before the site held an allocation")
			}
			if !strings.Contains(msg, "STATUS=sd asn=") {
				t.Errorf("READY message lacks the allocation status: %q", msg)
			}
		}
	}
	if !ready || !watchdog {
		t.Fatalf("within 30s: READY=1 seen %v, WATCHDOG=1 seen %v", ready, watchdog)
	}
}

// Bring-up pauses on api.PhaseConflict; the phase the agent reports is the
// allocator's, so the two names must stay one.
func TestConflictPhaseIsTheAllocatorsPhase(t *testing.T) {
	if alloc.PhaseConflict != api.PhaseConflict || alloc.PhaseAllocated != api.PhaseAllocated {
		t.Fatalf("alloc phases %q/%q, api phases %q/%q", alloc.PhaseConflict, alloc.PhaseAllocated, api.PhaseConflict, api.PhaseAllocated)
	}
}
