package alloc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
	"github.com/tfsite/tfsite/internal/notify"
)

// verifyInterval: how often an allocated site re-asserts its allocation, so
// that an operator release of a live site is noticed and reported. Long
// enough that hundreds of allocated sites cost the leader little.
const verifyInterval = 5 * time.Minute

type allocator struct {
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

func newAllocator(cfg Config, members MemberSource, log *slog.Logger) (*Allocator, error) {
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
	a := &allocator{
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
	return &Allocator{impl: a}, nil
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

func (a *allocator) endpoint() netip.AddrPort { return a.adv }

func (a *allocator) run(ctx context.Context) error {
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

func (a *allocator) waitTimer(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// acquire asks for (or re-asserts) the allocation once.
func (a *allocator) acquire(ctx context.Context) error {
	a.mu.Lock()
	var claim *site.Allocation
	if a.rec != nil {
		c := *a.rec
		claim = &c
	}
	wasConfirmed := a.confirmed
	if !wasConfirmed && a.phase == PhaseStarting {
		a.phase = PhaseRequesting
	}
	a.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	resp, err := a.send(rctx, request{Op: rpcAllocate, Site: a.cfg.Site, Owner: a.owner, Claim: claim, VoterHash: a.hash})
	if err == nil && resp.Alloc == nil {
		err = errors.New("allocator: voter answered without an allocation")
	}
	if err == nil && claim != nil && *resp.Alloc != *claim {
		err = fmt.Errorf("%w: committed state holds %v for this site but its record says %v", ErrConflict, *resp.Alloc, *claim)
	}
	if err == nil && resp.Alloc.Site != a.cfg.Site {
		err = fmt.Errorf("allocator: voter answered for site %q", resp.Alloc.Site)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		a.setError(err, wasConfirmed)
		return err
	}
	a.mu.Lock()
	recommitted := claim != nil && a.recIndex != 0 && resp.Index != a.recIndex
	a.mu.Unlock()
	if claim == nil {
		if werr := writeRecord(a.cfg.StateDir, localRecord{Owner: a.owner, Alloc: *resp.Alloc}); werr != nil {
			// Committed but not recorded: the FSM keeps it for our owner id,
			// so the next attempt gets the same values back.
			a.setError(fmt.Errorf("recording allocation: %w", werr), false)
			return werr
		}
		a.log.Info("allocation committed", "site", a.cfg.Site, "asn", resp.Alloc.ASN, "pod", resp.Alloc.Pod, "service", resp.Alloc.Service, "fabric", resp.Alloc.Fabric)
	} else if recommitted {
		a.log.Warn("this site's allocation had been released while it was running; its values were still free and are committed again", "allocation", resp.Alloc.String())
	} else if !wasConfirmed {
		a.log.Info("recorded allocation confirmed", "allocation", resp.Alloc.String())
	}
	a.mu.Lock()
	if a.rec == nil {
		al := *resp.Alloc
		a.rec = &al
		close(a.allocated)
	}
	a.confirmed, a.recIndex = true, resp.Index
	a.phase, a.lastErr = PhaseAllocated, ""
	a.mu.Unlock()
	a.notify()
	return nil
}

func (a *allocator) setError(err error, allocated bool) {
	phase := PhaseNoQuorum
	switch {
	case errors.Is(err, ErrConflict):
		phase = PhaseConflict
	case errors.Is(err, ErrExhausted):
		phase = PhaseExhausted
	case errors.Is(err, ErrVoterMismatch):
		phase = PhaseVoterMismatch
	case errors.Is(err, ErrNoVoter):
		phase = PhaseWaitingVoters
	case errors.Is(err, ErrRefused) && !allocated:
		phase = PhaseRequesting
	case allocated:
		// Held and recorded; only re-verification failed for now.
		phase = PhaseAllocated
	}
	a.mu.Lock()
	msg := err.Error()
	changed := a.phase != phase || a.lastErr != msg
	if phase == PhaseConflict && a.phase != PhaseConflict {
		a.log.Error("allocation conflict: operator action needed", "site", a.cfg.Site, "err", err)
	} else if changed && phase == PhaseWaitingVoters {
		a.log.Info("waiting for a voter to appear in gossip", "site", a.cfg.Site, "voters", a.cfg.Voters)
	} else if changed {
		a.log.Warn("allocation not (re)confirmed", "site", a.cfg.Site, "phase", phase, "err", err)
	}
	a.phase, a.lastErr = phase, msg
	a.mu.Unlock()
	if changed {
		a.notify()
	}
}

// send delivers req to the leader: through the local raft member on a
// voter, else through any voter known from gossip, following not-leader
// redirects.
func (a *allocator) send(ctx context.Context, req request) (response, error) {
	type target struct {
		site string
		ep   netip.AddrPort
		key  []byte
	}
	var targets []target
	mismatch := 0
	for _, p := range a.members.Peers() {
		if !p.Alive || !p.Endpoint.IsValid() {
			continue
		}
		if p.VoterHash != "" && p.VoterHash != a.hash {
			mismatch++
			continue
		}
		targets = append(targets, target{p.Site, p.Endpoint, a.voterKey(p.Site)})
	}
	rand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	a.mu.Lock()
	hint := a.leaderHint
	a.mu.Unlock()
	sort.SliceStable(targets, func(i, j int) bool { return targets[i].site == hint && targets[j].site != hint })
	if a.voter {
		targets = append([]target{{site: a.cfg.Site}}, targets...)
	}
	if len(targets) == 0 {
		if mismatch > 0 {
			return response{}, fmt.Errorf("%w: every voter seen (%d) is configured with another voter set than ours (%s): make the voters list identical on every site", ErrVoterMismatch, mismatch, a.hash)
		}
		return response{}, fmt.Errorf("%w: no voter of [%s] seen through gossip yet (check seeds and gossip key)", ErrNoVoter, strings.Join(a.cfg.Voters, " "))
	}
	var errs []error
	tried := map[string]bool{}
	for i := 0; i < len(targets) && i < 8; i++ {
		t := targets[i]
		if tried[t.site] {
			continue
		}
		tried[t.site] = true
		var resp response
		var err error
		if t.site == a.cfg.Site && a.voter {
			resp = a.handle(ctx, req, a.localCaller())
		} else {
			resp, err = call(ctx, a.dial, a.kr, a.self, t.ep, t.key, req)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("voter %s: %w", t.site, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if resp.Code == codeNotLeader && resp.Leader != "" {
			a.mu.Lock()
			a.leaderHint = resp.Leader
			a.mu.Unlock()
			if !tried[resp.Leader] {
				// Try the leader next: at the endpoint gossip shows, else
				// where the answering voter says it is.
				ep, ok := a.voterEndpoint(resp.Leader)
				key := a.voterKey(resp.Leader)
				if !ok && resp.LeaderEndpoint.IsValid() {
					ep, ok = resp.LeaderEndpoint, true
				}
				if key == nil {
					key = resp.LeaderKey
				}
				if ok {
					targets = slices.Insert(targets, i+1, target{resp.Leader, ep, key})
				}
			}
			errs = append(errs, fmt.Errorf("voter %s: not the leader (leader %s)", t.site, resp.Leader))
			continue
		}
		if resp.Code == codeNoQuorum || resp.Code == codeNotLeader {
			errs = append(errs, errorOf(codeNoQuorum, fmt.Sprintf("voter %s: %s", t.site, resp.Msg)))
			continue
		}
		if resp.Code == codeVoterMismatch {
			return resp, errorOf(resp.Code, resp.Msg)
		}
		if resp.Code != "" {
			return resp, errorOf(resp.Code, resp.Msg)
		}
		return resp, nil
	}
	return response{}, fmt.Errorf("%w: no voter leader answered: %w", ErrNoQuorum, errors.Join(errs...))
}

func (a *allocator) local() (site.Allocation, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec == nil {
		return site.Allocation{}, false
	}
	return *a.rec, true
}

func (a *allocator) wait(ctx context.Context) (site.Allocation, error) {
	select {
	case <-a.allocated:
		al, _ := a.local()
		return al, nil
	case <-ctx.Done():
		return site.Allocation{}, ctx.Err()
	case <-a.done:
		return site.Allocation{}, ErrClosed
	}
}

// readBarrier makes the leader's state machine safe to read for callers
// that prune by it (the BGP peers must never see a held allocation as
// released): once per term a raft barrier, so every entry of earlier terms
// is applied (a follower's replica, or a voter that just restarted, may
// lag); per read a quorum heartbeat round (VerifyLeader), so a deposed
// leader cannot answer. Reads write no log entry. What this leader
// committed but has not applied yet is its own unanswered work: an
// assignment nobody holds yet, or a release that only keeps a peer longer.
func (a *allocator) readBarrier() error {
	if term := a.raft.CurrentTerm(); a.readTerm.Load() != term {
		if err := a.raft.Barrier(a.cfg.RequestTimeout).Error(); err != nil {
			return err
		}
		a.readTerm.Store(term)
	}
	return a.raft.VerifyLeader().Error()
}

func (a *allocator) table(ctx context.Context) ([]site.Allocation, error) {
	resp, err := a.send(ctx, request{Op: rpcTable, VoterHash: a.hash})
	if err != nil {
		return nil, err
	}
	return resp.Table, nil
}

func (a *allocator) release(ctx context.Context, site string) error {
	if err := sitename.Validate(site); err != nil {
		return err
	}
	if !a.voter {
		return fmt.Errorf("%w: releases are accepted only from the operator of a voter: run `tfsite site release %s` on one of [%s]", ErrRefused, site, strings.Join(a.cfg.Voters, " "))
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	// An operator often releases right after restarting a voter: wait
	// out the election under way instead of failing at once.
	a.awaitLeader(ctx)
	_, err := a.send(ctx, request{Op: rpcRelease, Site: site, VoterHash: a.hash})
	if err != nil {
		return fmt.Errorf("releasing site %s: %w", site, err)
	}
	return nil
}

func (a *allocator) status() Status {
	a.mu.Lock()
	s := Status{Site: a.cfg.Site, Phase: a.phase, Error: a.lastErr, Voter: a.voter, VoterHash: a.hash, Insecure: len(a.kr) == 0}
	if a.rec != nil {
		al := *a.rec
		s.Allocation = &al
	}
	select {
	case <-a.done:
		s.Phase = PhaseClosed
	default:
	}
	a.mu.Unlock()
	if a.voter && a.raft != nil {
		s.RaftState = strings.ToLower(a.raft.State().String())
		_, id := a.raft.LeaderWithID()
		s.Leader = string(id)
	}
	for _, p := range a.members.Peers() {
		if p.VoterHash != "" && p.VoterHash != a.hash && p.Alive {
			s.Problems = append(s.Problems, fmt.Sprintf("site %s is configured with another voter set (hash %s, ours %s): make the voters list identical on every site", p.Site, p.VoterHash, a.hash))
		}
	}
	if s.Phase == PhaseConflict {
		s.Problems = append(s.Problems, s.Error)
	}
	s.Problems = append(s.Problems, a.raftProblems()...)
	if s.Insecure {
		s.Problems = append(s.Problems, "insecure: the allocator runs without a fleet key: anyone who reaches a voter can ask for allocations; set gossip.key or gossip.keyFile on every site")
	}
	return s
}

func (a *allocator) subscribe() <-chan struct{} { return a.changes.Subscribe() }

func (a *allocator) notify() { a.changes.Notify() }

func (a *allocator) close() error {
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
