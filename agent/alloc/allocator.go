package alloc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/internal/notify"
)

// verifyInterval: how often an allocated site re-asserts its allocation, so
// that an operator release of a live site is noticed and reported. Long
// enough that hundreds of allocated sites cost the leader little.
const verifyInterval = 5 * time.Minute

// Allocator obtains and keeps this site's allocation. On voter sites it also
// runs a raft member of the allocation state machine and serves allocation
// RPC for other sites.
type Allocator struct {
	cfg     Config
	members MemberSource
	log     *slog.Logger
	owner   string
	self    identity
	kr      keyring
	dial    dialFunc
	voter   bool
	hash    string
	recheck chan struct{} // watchReleases asks the run loop to re-assert now

	// voters only
	ep    *endpoint
	adv   netip.AddrPort
	fsm   *fsm
	raft  *raft.Raft
	trans *raft.NetworkTransport
	store *raftStore
	reqs  chan *pending
	// rejoining: started after losing the raft store, not caught up yet
	rejoining atomic.Bool

	mu         sync.Mutex
	rec        *site.Allocation // recorded (durable) allocation
	recIndex   uint64           // raft index of rec's committed entry, as last confirmed
	confirmed  bool             // committed state confirmed rec in this run
	phase      string
	lastErr    string
	leaderHint string
	readTerm   atomic.Uint64 // the term readBarrier last ran a raft barrier in
	changes    notify.Hub
	allocated  chan struct{} // closed once rec is set

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
	wg        sync.WaitGroup
	running   bool
}

type pending struct {
	req   request
	from  caller
	resp  chan response
	tries int
}

// New opens the state dir (node identity, local record and, on voters, the
// raft stores) and, on voters, starts listening on cfg.BindAddr. It does not
// contact peers until Run.
func New(cfg Config, members MemberSource, log *slog.Logger) (*Allocator, error) {
	def := Default()
	for _, d := range []struct{ v, def *time.Duration }{
		{&cfg.RetryInterval, &def.RetryInterval}, {&cfg.RequestTimeout, &def.RequestTimeout},
		{&cfg.HeartbeatTimeout, &def.HeartbeatTimeout}, {&cfg.ElectionTimeout, &def.ElectionTimeout},
		{&cfg.LeaderLeaseTimeout, &def.LeaderLeaseTimeout},
	} {
		if *d.v == 0 {
			*d.v = *d.def
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("allocator config: %w", err)
	}
	if members == nil {
		return nil, errors.New("allocator: no member source")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state dir: %w", err)
	}
	a := &Allocator{
		cfg: cfg, members: members, log: log, kr: newKeyring(cfg.Keys), dial: dialFrom(cfg.SourceAddr),
		voter: cfg.IsVoter(), hash: cfg.VoterSetHash(), phase: PhaseStarting, recheck: make(chan struct{}, 1),
		allocated: make(chan struct{}), done: make(chan struct{}),
	}
	var err error
	if a.owner, err = loadOrCreateOwner(cfg.StateDir); err != nil {
		return nil, err
	}
	if a.self, err = loadOrCreateIdentity(cfg.StateDir, cfg.Site); err != nil {
		return nil, err
	}
	if len(cfg.Keys) == 0 {
		log.Error("INSECURE: the allocator runs without a fleet key (insecure: true): anyone who reaches a voter's endpoint can ask for allocations, exhaust the pools and read the table; set gossip.key or gossip.keyFile on every site")
	}
	r, found, err := readRecord(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%w (it is this site's durable allocation: repair it, never delete it while the site is in use)", err)
	}
	if found {
		if r.Alloc.Site != cfg.Site {
			return nil, fmt.Errorf("state dir %s holds the allocation of site %q but this agent is configured as site %q: fix the site name or use another state dir", cfg.StateDir, r.Alloc.Site, cfg.Site)
		}
		if r.Owner != a.owner {
			return nil, fmt.Errorf("state dir %s: allocation record owner %s differs from node id %s: the state dir was mixed from two nodes", cfg.StateDir, short(r.Owner), short(a.owner))
		}
		al := r.Alloc
		a.rec = &al
		close(a.allocated)
	}
	if a.voter {
		if err := a.openRaft(); err != nil {
			a.closeRaft()
			return nil, err
		}
	}
	return a, nil
}

// peerLookup is implemented by a MemberSource that can find one peer
// without listing every site (membership.Membership does). Raft resolves a
// voter's address on every message it sends, heartbeats included.
type peerLookup interface {
	Peer(site string) (site.Peer, bool)
}

// loneVoterTimeout is the raft heartbeat, election and lease timeout of a
// fleet with a single voter.
const loneVoterTimeout = 100 * time.Millisecond

// Endpoint is the allocator endpoint to advertise in gossip metadata (the
// actual bound port when BindAddr had port 0); invalid on non-voters.
func (a *Allocator) Endpoint() netip.AddrPort { return a.adv }

// Run obtains the site's allocation (re-asserting a recorded one) and keeps
// serving until ctx is done; it returns nil then. A conflict or exhaustion
// does not end Run: it is reported in Status and retried.
func (a *Allocator) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("allocator: Run called twice")
	}
	a.running = true
	a.mu.Unlock()
	select {
	case <-a.done:
		return ErrClosed
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-a.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if a.voter {
		a.ep.wg.Add(1)
		go a.ep.serve(ctx)
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.worker(ctx) }()
	}
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.watchReleases(ctx) }()
	wake := a.members.Subscribe()
	// A voter retries at once when a raft leader is elected: the first
	// request of a starting fleet usually fails for want of one, and
	// waiting out the retry timer would add seconds to every boot.
	var elected <-chan raft.Observation
	if a.voter && a.raft != nil {
		ch, stop := a.observeElections()
		defer stop()
		elected = ch
	}
	fails := 0
	for {
		err := a.acquire(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := a.cfg.RetryInterval
		switch {
		case err == nil:
			wait, fails = verifyInterval, 0
		case errors.Is(err, ErrNoQuorum):
			// Voters are there but not answering (election, overload,
			// partition): back off to 2x so a crowd of waiting sites does
			// not keep an overloaded leader from recovering. Not more: a
			// site that failed just before a leader was elected would
			// otherwise idle for up to 12 s (bench-alloc stragglers).
			fails++
			wait <<= min(fails-1, 1)
		default:
			fails = 0
		}
		wait = wait/2 + rand.N(wait) // jitter 0.5x..1.5x
		// Only a site still looking for a voter retries early when gossip
		// changes; everything else waits for its timer, so hundreds of sites
		// joining at once do not turn churn into a request storm.
		// The others do not even receive the changes (a change left pending
		// in the channel only brings the next early retry forward), so
		// the churn of hundreds of sites does not wake this loop at all.
		var churn <-chan struct{}
		if errors.Is(err, ErrNoVoter) {
			churn = wake
		}
		var leader <-chan raft.Observation
		if err != nil {
			leader = elected
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-leader:
			t.Stop()
		case <-a.recheck:
			t.Stop()
		case _, ok := <-churn:
			t.Stop()
			if !ok {
				wake = nil
			}
			a.waitTimer(ctx, rand.N(a.cfg.RetryInterval/4+1)) // spread the herd
		case <-t.C:
		}
	}
}

// Close stops raft and the listener and releases the state dir. Safe to call
// twice and concurrently with Run.
func (a *Allocator) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		close(a.done)
		a.mu.Unlock()
		a.closeErr = a.closeRaft()
		a.wg.Wait()
		a.changes.Close()
	})
	return a.closeErr
}
