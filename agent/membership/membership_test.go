package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tfsite/tfsite/agent/site"
)

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("TFSITE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

type nodeOpt func(*Config)

func withKeys(k ...[]byte) nodeOpt { return func(c *Config) { c.Keys = k } }

// startNode runs a real memberlist agent on 127.0.0.1 with a free port.
func startNode(t *testing.T, site string, seeds []string, opts ...nodeOpt) *Membership {
	t.Helper()
	cfg := Default()
	cfg.Site, cfg.BindAddr, cfg.BindPort, cfg.Seeds = site, "127.0.0.1", 0, seeds
	cfg.Profile, cfg.RejoinInterval = "local", 300*time.Millisecond
	for _, o := range opts {
		o(&cfg)
	}
	m, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("starting %s: %v", site, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); m.Close(); <-done })
	return m
}

// eventually waits (woken by membership events, re-checked at least every
// 100ms) until cond holds, failing after a generous deadline.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool, watch ...*Membership) {
	t.Helper()
	var chs []<-chan struct{}
	for _, m := range watch {
		chs = append(chs, m.Subscribe())
	}
	wake := make(chan struct{}, 1)
	stop := make(chan struct{})
	defer close(stop)
	for _, ch := range chs {
		go func() {
			for {
				select {
				case _, ok := <-ch:
					if !ok {
						return
					}
					select {
					case wake <- struct{}{}:
					default:
					}
				case <-stop:
					return
				}
			}
		}()
	}
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-wake:
		case <-tick.C:
		}
	}
}

// leaveSeen makes m (site name) leave gracefully, closes it, and waits
// until watcher sees it left.
func leaveSeen(t *testing.T, m *Membership, name string, watcher *Membership) {
	t.Helper()
	if err := m.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	m.Close()
	eventually(t, "the watcher to see "+name+" left", 20*time.Second, func() bool { return states(watcher)[name] == StateLeft }, watcher)
}

func states(m *Membership) map[string]State {
	out := map[string]State{}
	for _, mem := range m.Members() {
		out[mem.Site] = mem.State
	}
	return out
}

func allAlive(m *Membership, sites ...string) bool {
	s := states(m)
	for _, site := range sites {
		if s[site] != StateAlive {
			return false
		}
	}
	return true
}

func TestJoinViaAnySeedAndMeta(t *testing.T) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.LocalAddr().String()})
	c := startNode(t, "c", []string{"127.0.0.1:1", b.LocalAddr().String()}) // first seed is dead
	eventually(t, "3 alive members everywhere", 20*time.Second, func() bool {
		return allAlive(a, "a", "b", "c") && allAlive(b, "a", "b", "c") && allAlive(c, "a", "b", "c")
	}, a, b, c)
	al := site.Allocation{Site: "a", ASN: 64512, Pod: netip.MustParsePrefix("10.32.0.0/21"), Service: netip.MustParsePrefix("10.96.0.0/22"), Fabric: netip.MustParsePrefix("10.64.0.0/22")}
	if err := a.UpdateMeta(Meta{RPC: netip.MustParseAddrPort("127.0.0.1:7947"), VoterHash: "h", Alloc: &al}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c to see a's allocation", 20*time.Second, func() bool {
		for _, m := range c.Members() {
			if m.Site == "a" && m.Meta.Alloc != nil && *m.Meta.Alloc == al {
				return true
			}
		}
		return false
	}, c)
	var peer site.Peer
	for _, p := range c.Peers() {
		if p.Site == "a" {
			peer = p
		}
	}
	if !peer.Alive || peer.Endpoint != netip.MustParseAddrPort("127.0.0.1:7947") || peer.VoterHash != "h" {
		t.Fatalf("peer view of a: %+v", peer)
	}
	if len(c.Problems()) != 0 {
		t.Fatalf("problems: %v", c.Problems())
	}
	// A graceful leave shows as left, and stays listed.
	leaveSeen(t, b, "b", a)
}

func TestEncryptedGossipRefusesWrongKey(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	a := startNode(t, "a", nil, withKeys(k1))
	good := startNode(t, "good", []string{a.LocalAddr().String()}, withKeys(k1))
	wrong := startNode(t, "wrong", []string{a.LocalAddr().String()}, withKeys(k2))
	plain := startNode(t, "plain", []string{a.LocalAddr().String()})
	eventually(t, "good to join a", 20*time.Second, func() bool { return allAlive(a, "good") && allAlive(good, "a") }, a, good)
	if _, err := wrong.Join([]string{a.LocalAddr().String()}); err == nil {
		t.Fatal("join with the wrong key succeeded")
	}
	if _, err := plain.Join([]string{a.LocalAddr().String()}); err == nil {
		t.Fatal("join without a key succeeded")
	}
	for _, site := range []string{"wrong", "plain"} {
		if _, ok := states(a)[site]; ok {
			t.Fatalf("a lists %s, which has no valid key", site)
		}
	}
	if _, ok := states(wrong)["a"]; ok {
		t.Fatal("wrong-key node learned about a")
	}
}

func TestDuplicateSiteNameReported(t *testing.T) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.LocalAddr().String()})
	eventually(t, "b joined", 20*time.Second, func() bool { return allAlive(a, "b") }, a)
	dup := startNode(t, "a", []string{b.LocalAddr().String()})
	eventually(t, "duplicate site name reported", 20*time.Second, func() bool {
		for _, m := range []*Membership{a, b, dup} {
			for _, p := range m.Problems() {
				if strings.Contains(p, `duplicate site name "a"`) {
					return true
				}
			}
		}
		return false
	}, a, b, dup)
}

func TestConfigValidateReportsEverything(t *testing.T) {
	c := Config{Site: "A", BindAddr: "nope", BindPort: 70000, AdvertiseAddr: "0.0.0.0", Seeds: []string{"", "h:0"}, Keys: [][]byte{{1, 2}}, Profile: "fast"}
	err := c.Validate()
	for _, want := range []string{"site", "bind address", "ports", "advertise", "seeds[0]", "seeds[1]", "keys[0]: 2 bytes", "rejoin", "profile"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if err := (Config{Site: "a", BindAddr: "0.0.0.0", Seeds: []string{"10.0.0.1", "[::1]:7946", "host.example:7000"}, RejoinInterval: time.Second}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// A seed that comes up after a site joined through another seed is joined
// all the same. The late seed has no seeds of its own (it is the first site
// of its config), so only the others' rejoin rounds can bring it in; before
// they tried seeds no node they knew gossips at, it stayed alone for good.
func TestLateSeedIsJoined(t *testing.T) {
	late, onLatePort := reservePort(t)
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{late, a.LocalAddr().String()})
	eventually(t, "b to join a", 20*time.Second, func() bool { return allAlive(b, "a", "b") && allAlive(a, "a", "b") }, a, b)
	l := startNode(t, "late", nil, onLatePort)
	eventually(t, "the late seed and the others to see each other", 20*time.Second, func() bool {
		return allAlive(l, "a", "b", "late") && allAlive(a, "a", "b", "late") && allAlive(b, "a", "b", "late")
	}, l, a, b)
}

// A site left alone re-joins its seeds even when they left on purpose: a
// seed that restarts with no seeds and no saved peers of its own cannot find
// the fleet by itself.
func TestLoneSiteRejoinsSeedThatLeft(t *testing.T) {
	seed, onPort := reservePort(t)
	b := startNode(t, "b", nil, onPort)
	a := startNode(t, "a", []string{seed})
	eventually(t, "a and b to see each other", 20*time.Second, func() bool { return allAlive(a, "a", "b") && allAlive(b, "a", "b") }, a, b)
	leaveSeen(t, b, "b", a)
	b2 := startNode(t, "b", nil, onPort)
	eventually(t, "a, alone, to re-join the restarted seed", 20*time.Second, func() bool {
		return allAlive(a, "a", "b") && allAlive(b2, "a", "b")
	}, a, b2)
}

// reservePort finds a port free for both TCP and UDP on 127.0.0.1 for a
// node started later: its gossip address, and the option that binds it.
func reservePort(t *testing.T) (string, nodeOpt) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap := netip.MustParseAddrPort(ln.Addr().String())
		pc, err := net.ListenPacket("udp", ap.String())
		ln.Close()
		if err == nil {
			pc.Close()
			return ap.String(), func(c *Config) { c.BindPort = int(ap.Port()) }
		}
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return "", nil
}

func TestResolveJoinAddr(t *testing.T) {
	v4 := netip.MustParseAddrPort("127.0.0.1:7946")
	for addr, want := range map[string]netip.AddrPort{
		"127.0.0.1:7946":            v4,
		"[::ffff:127.0.0.1]:7946":   v4, // the same address, IPv4-mapped
		"[::1]:7000":                netip.MustParseAddrPort("[::1]:7000"),
		"localhost:7946":            v4, // resolved through /etc/hosts
		"no-such-seed.invalid:7946": {},
		"127.0.0.1":                 {}, // join addresses always carry a port
		"127.0.0.1:70000":           {},
	} {
		got := resolveJoinAddr(context.Background(), addr)
		if want.IsValid() && !slices.Contains(got, want) || !want.IsValid() && len(got) > 0 {
			t.Errorf("resolveJoinAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Peers and Peer read this package's remembered nodes, not memberlist's
// member list; they must agree with Members as peers come and go.
func TestPeerLookupAgreesWithMembers(t *testing.T) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.LocalAddr().String()})
	c := startNode(t, "c", []string{a.LocalAddr().String()})
	rpc := netip.MustParseAddrPort("127.0.0.1:7947")
	if err := b.UpdateMeta(Meta{RPC: rpc, VoterHash: "h"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees b's endpoint and c alive", 10*time.Second, func() bool {
		p, ok := a.Peer("b")
		return ok && p.Alive && p.Endpoint == rpc && allAlive(a, "b", "c")
	}, a)
	if _, ok := a.Peer("a"); ok {
		t.Error("Peer returned the local site")
	}
	if _, ok := a.Peer("nope"); ok {
		t.Error("Peer returned an unknown site")
	}
	c.Close() // no leave: c becomes dead
	eventually(t, "a sees c dead", 15*time.Second, func() bool { return states(a)["c"] == StateDead }, a)
	if p, ok := a.Peer("c"); !ok || p.Alive {
		t.Errorf("Peer(c) after it died = %+v, %v; want known and not alive", p, ok)
	}
	want := map[string]bool{}
	for _, m := range a.Members() {
		if !m.Local {
			want[m.Site] = m.State == StateAlive || m.State == StateSuspect
		}
	}
	got := map[string]bool{}
	for _, p := range a.Peers() {
		got[p.Site] = p.Alive
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Peers() = %v, Members() says %v", got, want)
	}
}

// TestMetaUpdateReachesPeersDespiteLostBroadcast: memberlist's broadcast
// queue can silently drop a node's own metadata update (hashicorp/memberlist
// #263: when an update replaces the only queued message the queue reuses
// message ids, and of two queued messages with equal id, length and transmit
// count only one is kept). The sequence that loses it is the agent's own at
// start-up: sites start together and publish their first metadata, then all
// publish their allocations at once, with metadata of equal size. Every
// update must reach every peer within a bound well below memberlist's
// push/pull interval (15 s in the local profile), the only other way it
// would get there. Each round starts a fresh fleet: without the repair about
// half the rounds lose an update.
func TestMetaUpdateReachesPeersDespiteLostBroadcast(t *testing.T) {
	metaUpdateRounds(t, func(c *Config) { c.metaTimeout, c.retryFirst = time.Second, 200*time.Millisecond })
}

// metaUpdateRounds runs the start-up sequence that loses updates, in fresh
// three-site fleets round after round; every site must see every site's
// allocation within 8 s (push/pull, the only other way, is 15 s away). The
// sites keep calling UpdateMeta with their metadata, as the agent's loop
// does.
func metaUpdateRounds(t *testing.T, opt nodeOpt) {
	key := []byte("0123456789abcdef0123456789abcdef")
	const bound = 8 * time.Second
	for round := range 6 {
		a := startNode(t, "a", nil, withKeys(key), opt)
		b := startNode(t, "b", []string{a.LocalAddr().String()}, withKeys(key), opt)
		c := startNode(t, "c", []string{a.LocalAddr().String(), b.LocalAddr().String()}, withKeys(key), opt)
		ms := []*Membership{a, b, c}
		for _, m := range ms {
			m.UpdateMeta(testMeta(m.cfg.Site, false))
		}
		time.Sleep(time.Second)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, m := range ms {
			wg.Go(func() {
				for {
					m.UpdateMeta(testMeta(m.cfg.Site, true))
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			})
		}
		start := time.Now()
		converged := func() bool {
			for _, x := range ms {
				for _, mem := range x.Members() {
					if mem.Meta.Alloc == nil {
						return false
					}
				}
			}
			return true
		}
		for !converged() {
			if time.Since(start) > bound {
				close(stop)
				wg.Wait()
				t.Fatalf("round %d: after %s not every site sees every site's allocation in gossip", round, bound)
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		for _, m := range ms {
			m.Close()
		}
	}
}

// testMeta is a site's metadata before (al false) and after allocation.
func testMeta(name string, al bool) Meta {
	m := Meta{RPC: netip.MustParseAddrPort("127.0.0.1:7947"), VoterHash: "h"}
	if al {
		m.Alloc = &site.Allocation{Site: name, ASN: 64600, Pod: netip.MustParsePrefix("10.32.0.0/21"), Service: netip.MustParsePrefix("10.96.0.0/22"), Fabric: netip.MustParsePrefix("10.64.0.0/22")}
	}
	return m
}

// In a small fleet a broadcast that memberlist completes can still miss a
// peer; UpdateMeta then confirms the update with a second broadcast. Here
// every packet of the first broadcast is lost on the wire, and nothing else
// could carry the update in time: no probes (10 s apart) and no push/pull
// (a minute apart).
func TestSmallFleetUpdateIsConfirmed(t *testing.T) {
	p := &partition{group: map[string]int{}}
	quiet := func(c *Config) {
		c.wrapTransport = p.wrap
		c.metaTimeout, c.retryFirst = time.Second, 200*time.Millisecond
		c.tune = func(mc *memberlist.Config) {
			mc.ProbeInterval, mc.PushPullInterval = 10*time.Second, time.Minute
		}
	}
	a := startNode(t, "a", nil, quiet)
	b := startNode(t, "b", []string{a.LocalAddr().String()}, quiet)
	eventually(t, "a and b to see each other", 10*time.Second, func() bool {
		return allAlive(a, "b") && allAlive(b, "a")
	}, a, b)
	seen := func() bool {
		for _, mem := range b.Members() {
			if mem.Site == "a" {
				return mem.Meta.Alloc != nil
			}
		}
		return false
	}
	p.set(b.LocalAddr(), 1)
	if err := a.UpdateMeta(testMeta("a", true)); err != nil {
		t.Fatalf("first broadcast: %v", err)
	}
	p.set(b.LocalAddr(), 0)
	if seen() {
		t.Fatal("b saw the update that the cut should have dropped")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !seen() {
		if time.Now().After(deadline) {
			t.Fatal("after 5 s b has not seen a's update: the confirming broadcast did not come")
		}
		a.UpdateMeta(testMeta("a", true)) // as the agent's loop does
		time.Sleep(50 * time.Millisecond)
	}
}

// The fleet's first site has no seeds, and peers do not re-join a site that
// left on purpose: after a graceful restart it finds the fleet again through
// the peers it saved. A site alone keeps its saved peers.
func TestRestartedSeedlessSiteRejoins(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state", "gossip-peers.json")
	withPeers := func(c *Config) { c.PeersFile = file }
	a := startNode(t, "a", nil, withPeers)
	b := startNode(t, "b", []string{a.LocalAddr().String()})
	c := startNode(t, "c", []string{a.LocalAddr().String()})
	eventually(t, "3 alive members everywhere", 20*time.Second, func() bool {
		return allAlive(a, "a", "b", "c") && allAlive(b, "a", "b", "c") && allAlive(c, "a", "b", "c")
	}, a, b, c)
	want := []string{b.LocalAddr().String(), c.LocalAddr().String()}
	slices.Sort(want)
	eventually(t, "a to save b and c", 20*time.Second, func() bool {
		saved, err := readPeers(file)
		return err == nil && slices.Equal(saved, want)
	}, a)
	leaveSeen(t, a, "a", b)
	a2 := startNode(t, "a", nil, withPeers)
	eventually(t, "the restarted a and its peers to see each other", 20*time.Second, func() bool {
		return allAlive(a2, "a", "b", "c") && allAlive(b, "a", "b", "c") && allAlive(c, "a", "b", "c")
	}, a2, b, c)
	b.Close()
	c.Close()
	eventually(t, "a alone", 20*time.Second, func() bool { return !allAlive(a2, "b") && !allAlive(a2, "c") }, a2)
	time.Sleep(time.Second) // several rejoin rounds (300 ms) alone
	if saved, err := readPeers(file); err != nil || !slices.Equal(saved, want) {
		t.Fatalf("saved peers after rounds alone: %v, %v; want %v kept", saved, err, want)
	}
}

func TestReadPeersErrors(t *testing.T) {
	dir := t.TempDir()
	if got, err := readPeers(filepath.Join(dir, "none")); got != nil || err != nil {
		t.Fatalf("no file: %v, %v; want nothing", got, err)
	}
	for body, want := range map[string]string{
		`{"a":1}`:               "not a peer list",
		`["10.0.0.1:7946"] x`:   "data after the JSON value",
		`["10.0.0.1:7946"]]`:    "data after the JSON value",
		`["10.0.0.1"]`:          `peer 0 "10.0.0.1" is not ip:port`,
		`["10.0.0.1:0"]`:        "is not ip:port",
		`["host.example:7946"]`: "is not ip:port",
		"[" + strings.Repeat(`"10.0.0.1:1",`, 16) + `"10.0.0.1:1"]`: "17 peers, at most 16",
	} {
		p := filepath.Join(dir, "peers.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readPeers(p)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line naming the file and %q", body, err, want)
		}
	}
}

func FuzzDecodePeers(f *testing.F) {
	f.Add([]byte(`["10.0.0.1:7946","[fd00::1]:7946"]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`["10.0.0.1"]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		addrs, err := DecodePeers(b)
		if err != nil {
			return
		}
		if len(addrs) > maxSavedPeers {
			t.Fatalf("%d peers accepted", len(addrs))
		}
		for _, a := range addrs {
			if ap, err := netip.ParseAddrPort(a); err != nil || ap.Port() == 0 {
				t.Fatalf("accepted %q", a)
			}
		}
	})
}
