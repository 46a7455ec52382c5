package alloc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/membership"
	"github.com/tfsite/tfsite/agent/pools"
	"github.com/tfsite/tfsite/agent/site"
)

// These tests run real memberlist agents and real raft voters on loopback,
// with state in t.TempDir().

var gossipKey = bytes.Repeat([]byte{7}, 32)

type testSite struct {
	t      *testing.T
	name   string
	dir    string
	addr   netip.AddrPort // gossip
	ep     netip.AddrPort // allocator endpoint
	m      *membership.Membership
	a      *alloc.Allocator
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type siteOpt func(*alloc.Config)

func logger(t *testing.T) *slog.Logger {
	if os.Getenv("TFSITE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// startSite starts gossip + allocator for name. dir "" means a new temp dir.
func startSite(t *testing.T, name, dir string, voters []string, seeds []string, opts ...siteOpt) *testSite {
	t.Helper()
	return startSiteOn(t, name, dir, 0, voters, seeds, opts...)
}

// restart starts a stopped site again from its state dir on its old ports,
// as a rebooted appliance would.
func (s *testSite) restart(voters, seeds []string, opts ...siteOpt) *testSite {
	s.t.Helper()
	ep := s.ep
	if ep.IsValid() {
		opts = append(opts, func(c *alloc.Config) { c.BindAddr = ep })
	}
	return startSiteOn(s.t, s.name, s.dir, int(s.addr.Port()), voters, seeds, opts...)
}

func startSiteOn(t *testing.T, name, dir string, gossipPort int, voters []string, seeds []string, opts ...siteOpt) *testSite {
	t.Helper()
	return startSiteView(t, name, dir, gossipPort, voters, seeds, nil, opts...)
}

// hiddenView is a site's gossip view without the sites hide names (as if it
// had declared them dead and never heard them refute it).
type hiddenView struct {
	*membership.Membership
	hide func(site string) bool
}

func (v hiddenView) Peers() []site.Peer {
	var out []site.Peer
	for _, p := range v.Membership.Peers() {
		if !v.hide(p.Site) {
			out = append(out, p)
		}
	}
	return out
}

func (v hiddenView) Peer(name string) (site.Peer, bool) {
	if v.hide(name) {
		return site.Peer{}, false
	}
	return v.Membership.Peer(name)
}

// startSiteView is startSiteOn whose allocator sees gossip without the sites
// hide names (nil: all).
func startSiteView(t *testing.T, name, dir string, gossipPort int, voters []string, seeds []string, hide func(string) bool, opts ...siteOpt) *testSite {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	log := logger(t).With("site", name)
	mc := membership.Default()
	mc.Site, mc.BindAddr, mc.BindPort, mc.Seeds, mc.Keys = name, "127.0.0.1", gossipPort, seeds, [][]byte{gossipKey}
	mc.Profile, mc.RejoinInterval = "local", 500*time.Millisecond
	m, err := membership.New(mc, log)
	if err != nil {
		t.Fatalf("gossip %s: %v", name, err)
	}
	ac := alloc.Default()
	ac.Site, ac.Voters, ac.StateDir, ac.Keys = name, voters, dir, [][]byte{gossipKey}
	ac.BindAddr = netip.MustParseAddrPort("127.0.0.1:0")
	ac.HeartbeatTimeout, ac.ElectionTimeout, ac.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
	ac.RetryInterval, ac.RequestTimeout = 300*time.Millisecond, 5*time.Second
	for _, o := range opts {
		o(&ac)
	}
	var view alloc.MemberSource = m
	if hide != nil {
		view = hiddenView{Membership: m, hide: hide}
	}
	a, err := alloc.New(ac, view, log)
	if err != nil {
		m.Close()
		t.Fatalf("allocator %s: %v", name, err)
	}
	s := &testSite{t: t, name: name, dir: dir, m: m, a: a, done: make(chan struct{}), addr: m.LocalAddr(), ep: a.Endpoint()}
	publish := func() {
		meta := membership.Meta{RPC: a.Endpoint(), VoterHash: a.VoterHash(), Version: "test", Key: a.PublicKey(), Released: a.Released()}
		if al, ok := a.Local(); ok {
			meta.Alloc = &al
		}
		m.UpdateMeta(meta)
	}
	publish()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	changes := a.Subscribe()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.Run(ctx) }()
	go func() { defer wg.Done(); a.Run(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-changes:
				if !ok {
					return
				}
				publish()
			}
		}
	}()
	go func() { wg.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	return s
}

// stop shuts the site down (like a crash of the process: no leave).
func (s *testSite) stop() {
	s.once.Do(func() {
		s.cancel()
		if err := s.a.Close(); err != nil {
			s.t.Logf("closing allocator %s: %v", s.name, err)
		}
		s.a.Close() // twice is fine
		s.m.Close()
		<-s.done
	})
}

func (s *testSite) gossip() string { return s.addr.String() }

func waitAllocated(t *testing.T, timeout time.Duration, sites ...*testSite) []site.Allocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []site.Allocation
	for _, s := range sites {
		al, err := s.a.Wait(ctx)
		if err != nil {
			t.Fatalf("site %s not allocated within %s: phase %s, error %q", s.name, timeout, s.a.Phase(), s.a.Status().Error)
		}
		if al.Site != s.name {
			t.Fatalf("site %s got allocation for %q", s.name, al.Site)
		}
		out = append(out, al)
	}
	return out
}

// releaseWhenGone releases site on voter as its operator would: once the
// voter's gossip no longer sees it alive (a stopped site stays alive, then
// suspect, for a moment), which the voter checks.
func releaseWhenGone(t *testing.T, voter *testSite, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := voter.a.Release(ctx, name)
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, alloc.ErrRefused) || !strings.Contains(err.Error(), "alive") || time.Now().After(deadline) {
			t.Fatalf("releasing %s on %s: %v", name, voter.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitPhase(t *testing.T, s *testSite, phase string, timeout time.Duration) alloc.Status {
	t.Helper()
	ch := s.a.Subscribe()
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st := s.a.Status()
		if st.Phase == phase {
			return st
		}
		select {
		case <-deadline:
			t.Fatalf("site %s: phase %q (error %q), want %q after %s", s.name, st.Phase, st.Error, phase, timeout)
		case <-ch:
		case <-tick.C:
		}
	}
}

func checkRecords(t *testing.T, sites ...*testSite) []site.Allocation {
	t.Helper()
	var all []site.Allocation
	for _, s := range sites {
		al, ok, err := alloc.ReadRecord(s.dir)
		if err != nil || !ok {
			t.Fatalf("site %s: no durable record (%v)", s.name, err)
		}
		if live, _ := s.a.Local(); live != al {
			t.Fatalf("site %s: record %v differs from live %v", s.name, al, live)
		}
		all = append(all, al)
	}
	if err := site.CheckDisjoint(all); err != nil {
		t.Fatal(err)
	}
	return all
}

func TestTwoSiteLabOneVoter(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	got := waitAllocated(t, 30*time.Second, v, s)
	checkRecords(t, v, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	table, err := s.a.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 2 || site.CheckDisjoint(table) != nil {
		t.Fatalf("table %v", table)
	}
	for _, al := range got {
		if al.ASN < 64512 || al.ASN > 65534 {
			t.Fatalf("ASN %d outside the default pool", al.ASN)
		}
	}
	st := waitPhase(t, v, alloc.PhaseAllocated, 10*time.Second)
	if !st.Voter || st.RaftState != "leader" || st.Leader != "v" {
		t.Fatalf("voter status %+v", st)
	}
}

func TestThreeVotersConcurrentJoins(t *testing.T) {
	voters := []string{"v1", "v2", "v3"}
	v1 := startSite(t, "v1", "", voters, nil)
	seeds := []string{v1.gossip()}
	var mu sync.Mutex
	sites := []*testSite{v1}
	var wg sync.WaitGroup
	for i := 0; i < 14; i++ {
		name := fmt.Sprintf("s%02d", i)
		if i < 2 {
			name = voters[i+1]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := startSite(t, name, "", voters, seeds)
			mu.Lock()
			sites = append(sites, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	waitAllocated(t, 45*time.Second, sites...)
	all := checkRecords(t, sites...)
	// The table comes from the leader after a barrier, so it is complete as
	// soon as every site holds its record, asked from any site.
	for _, s := range []*testSite{v1, sites[len(sites)-1]} {
		table, err := s.a.Table(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(table) != len(all) {
			t.Fatalf("committed table from %s has %d sites, %d hold records", s.name, len(table), len(all))
		}
		if err := site.CheckDisjoint(table); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestartKeepsAllocation(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	before := waitAllocated(t, 30*time.Second, v, s)
	s.stop()
	v.stop()
	// Both come back from their state dirs: same values, no renumbering.
	v = v.restart(voters, nil)
	if al, ok := v.a.Local(); !ok || al != before[0] {
		t.Fatalf("voter restarted with %v, had %v", al, before[0])
	}
	s = s.restart(voters, []string{v.gossip()})
	if al, ok := s.a.Local(); !ok || al != before[1] {
		t.Fatalf("site restarted with %v, had %v", al, before[1])
	}
	waitPhase(t, s, alloc.PhaseAllocated, 30*time.Second) // re-asserted and confirmed
	n := startSite(t, "n", "", voters, []string{v.gossip()})
	waitAllocated(t, 30*time.Second, n)
	checkRecords(t, v, s, n)
}

// TestReleaseRightAfterVoterRestart: an operator releasing a departed site
// on a voter that just restarted meets an election still under way; the
// release waits it out (within the request timeout) instead of failing.
func TestReleaseRightAfterVoterRestart(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	waitAllocated(t, 30*time.Second, v, s)
	s.stop() // departs for good
	v.stop()
	v = v.restart(voters, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.a.Release(ctx, "s"); err != nil {
		t.Fatalf("release on a just-restarted voter: %v", err)
	}
	table, err := v.a.Table(ctx)
	if err != nil || len(table) != 1 || table[0].Site != "v" {
		t.Fatalf("table after the release = %v (%v), want only v", table, err)
	}
}

func TestMinorityStallsThenHeals(t *testing.T) {
	voters := []string{"v1", "v2", "v3"}
	v1 := startSite(t, "v1", "", voters, nil)
	v2 := startSite(t, "v2", "", voters, []string{v1.gossip()})
	v3 := startSite(t, "v3", "", voters, []string{v1.gossip()})
	waitAllocated(t, 30*time.Second, v1, v2, v3)
	v2.stop()
	v3.stop()
	// v1 alone is a minority: a new site must stall, never be allocated.
	x := startSite(t, "x", "", voters, []string{v1.gossip()})
	st := waitPhase(t, x, alloc.PhaseNoQuorum, 60*time.Second)
	if st.Allocation != nil {
		t.Fatalf("minority allocated %v", st.Allocation)
	}
	if _, ok, _ := alloc.ReadRecord(x.dir); ok {
		t.Fatal("minority wrote a record")
	}
	v2 = v2.restart(voters, []string{v1.gossip()})
	v3 = v3.restart(voters, []string{v1.gossip()})
	waitAllocated(t, 60*time.Second, x)
	checkRecords(t, v1, v2, v3, x)
}

func smallPools() pools.Pools {
	return pools.Pools{
		ASNs:    []pools.ASNRange{{First: 64512, Last: 64513}},
		Pod:     pools.PrefixPool{Supernet: netip.MustParsePrefix("10.32.0.0/24"), Length: 25},
		Service: pools.PrefixPool{Supernet: netip.MustParsePrefix("10.96.0.0/24"), Length: 25},
		Fabric:  pools.PrefixPool{Supernet: netip.MustParsePrefix("10.64.0.0/24"), Length: 25},
	}
}

func TestExhaustedThenReleaseAllowsReuse(t *testing.T) {
	voters := []string{"v"}
	pools := func(c *alloc.Config) { c.Pools = smallPools() }
	v := startSite(t, "v", "", voters, nil, pools)
	s1 := startSite(t, "s1", "", voters, []string{v.gossip()}, pools)
	waitAllocated(t, 30*time.Second, v, s1)
	s2 := startSite(t, "s2", "", voters, []string{v.gossip()}, pools)
	st := waitPhase(t, s2, alloc.PhaseExhausted, 30*time.Second)
	if !strings.Contains(st.Error, "no free ASN") {
		t.Fatalf("exhaustion error does not say what is exhausted: %q", st.Error)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.a.Release(ctx, "nope"); !errors.Is(err, alloc.ErrUnknownSite) {
		t.Fatalf("release of an unknown site: %v", err)
	}
	// s1 departs for good; the operator releases it, on a voter: a site
	// that is not a voter refuses, naming the voters.
	s1Alloc, _ := s1.a.Local()
	s1.stop()
	if err := s2.a.Release(ctx, "s1"); !errors.Is(err, alloc.ErrRefused) || !strings.Contains(err.Error(), "on one of [v]") {
		t.Fatalf("release on a site that is not a voter: %v", err)
	}
	releaseWhenGone(t, v, "s1")
	got := waitAllocated(t, 30*time.Second, s2)[0]
	if got.ASN != s1Alloc.ASN || got.Pod != s1Alloc.Pod {
		t.Fatalf("released values not reused: got %v, s1 had %v", got, s1Alloc)
	}
	checkRecords(t, v, s2)
}

func TestPinsHonoured(t *testing.T) {
	voters := []string{"v"}
	pin := pools.Pin{Site: "p", ASN: 65000, Pod: netip.MustParsePrefix("10.32.0.0/21")}
	pools := func(c *alloc.Config) { c.Pools.Pins = []pools.Pin{pin} }
	v := startSite(t, "v", "", voters, nil, pools)
	p := startSite(t, "p", "", voters, []string{v.gossip()}, pools)
	got := waitAllocated(t, 30*time.Second, v, p)
	if got[1].ASN != 65000 || got[1].Pod != pin.Pod {
		t.Fatalf("pin not honoured: %v", got[1])
	}
	if got[0].Pod.Overlaps(pin.Pod) {
		t.Fatalf("voter got the pinned pod prefix: %v", got[0])
	}
	checkRecords(t, v, p)
}

func TestDuplicateSiteNameRefused(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	orig := waitAllocated(t, 30*time.Second, v, s)[1]
	// A second node (own state dir, own node id) claims site "s".
	dup := startSite(t, "s", "", voters, []string{v.gossip()})
	st := waitPhase(t, dup, alloc.PhaseConflict, 30*time.Second)
	if !strings.Contains(st.Error, "two nodes use one site name") || st.Allocation != nil {
		t.Fatalf("duplicate site status %+v", st)
	}
	if al, _ := s.a.Local(); al != orig {
		t.Fatalf("original site renumbered: %v", al)
	}
}

func TestVoterSetMismatchReported(t *testing.T) {
	v := startSite(t, "v", "", []string{"v"}, nil)
	waitAllocated(t, 30*time.Second, v)
	odd := startSite(t, "odd", "", []string{"v", "w"}, []string{v.gossip()})
	st := waitPhase(t, odd, alloc.PhaseVoterMismatch, 30*time.Second)
	if !strings.Contains(st.Error, "voters") {
		t.Fatalf("mismatch error unclear: %q", st.Error)
	}
	// The voter reports the misconfigured peer too (through gossip meta).
	deadline := time.Now().Add(20 * time.Second)
	for {
		ps := v.a.Status().Problems
		if len(ps) > 0 && strings.Contains(ps[0], "odd") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("voter does not report the mismatched site: %v", ps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	c := alloc.Default()
	c.Site, c.Voters = "Bad", []string{"v", "v"}
	c.Keys = [][]byte{{1}}
	err := c.Validate()
	for _, want := range []string{"site", `"v" listed twice`, "state dir", "keys[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	c = alloc.Default()
	c.Site, c.Voters, c.StateDir = "v", []string{"v"}, t.TempDir()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "advertise") {
		t.Fatalf("voter with 0.0.0.0 and no advertise address accepted: %v", err)
	}
	// No fleet key: refused unless Insecure says so.
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "keys: none") {
		t.Fatalf("no keys accepted: %v", err)
	}
	c.Insecure = true
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "keys") {
		t.Fatalf("Insecure without keys refused: %v", err)
	}
}

// TestVoterRetriesWhenALeaderIsElected: a voter whose first request fails
// for want of a raft leader retries when one is elected, not when its retry
// timer (here a minute) runs out. Three voters, so the election is a real one.
func TestVoterRetriesWhenALeaderIsElected(t *testing.T) {
	voters := []string{"v1", "v2", "v3"}
	slowRetry := func(c *alloc.Config) { c.RetryInterval = time.Minute }
	v1 := startSite(t, "v1", "", voters, nil, slowRetry)
	v2 := startSite(t, "v2", "", voters, []string{v1.gossip()}, slowRetry)
	v3 := startSite(t, "v3", "", voters, []string{v1.gossip()}, slowRetry)
	// The timer alone would retry after 30-90 s (1-3x jitter of 1 min x backoff).
	waitAllocated(t, 25*time.Second, v1, v2, v3)
	checkRecords(t, v1, v2, v3)
}

// TestNonVoterReachesALeaderItsGossipLacks: a site whose gossip view lacks
// the raft leader (it declared it dead under load and never heard the
// refutation; seen once with 500 sites) reaches it at the endpoint a
// follower voter names in its not-leader answer.
func TestNonVoterReachesALeaderItsGossipLacks(t *testing.T) {
	voters := []string{"v1", "v2", "v3"}
	v1 := startSite(t, "v1", "", voters, nil)
	v2 := startSite(t, "v2", "", voters, []string{v1.gossip()})
	v3 := startSite(t, "v3", "", voters, []string{v1.gossip()})
	waitAllocated(t, 25*time.Second, v1, v2, v3)
	isLeader := func(name string) bool {
		for _, v := range []*testSite{v1, v2, v3} {
			if st := v.a.Status(); st.RaftState == "leader" {
				return name == v.name
			}
		}
		return false
	}
	n := startSiteView(t, "n1", "", 0, voters, []string{v1.gossip()}, isLeader)
	waitAllocated(t, 25*time.Second, n)
	checkRecords(t, v1, v2, v3, n)
}
