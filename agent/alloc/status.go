package alloc

import (
	"context"
	"fmt"
	"strings"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
)

// Phases reported by Status().Phase.
const (
	PhaseStarting      = "starting"       // opening state
	PhaseWaitingVoters = "waiting-voters" // no voter known through gossip yet
	PhaseRequesting    = "requesting"     // asking a voter for an allocation (or refused for now: see Error)
	PhaseAllocated     = "allocated"      // committed allocation held
	PhaseNoQuorum      = "no-quorum"      // voters reachable but no majority: stalled, safe
	PhaseConflict      = "conflict"       // recorded allocation or site name collides: operator action needed
	PhaseExhausted     = "exhausted"      // no free value in a pool
	PhaseVoterMismatch = "voter-mismatch" // peers are configured with another voter set
	PhaseClosed        = "closed"
)

// Status is a snapshot of the allocator for the status API and metrics.
type Status struct {
	Site  string `json:"site"`
	Phase string `json:"phase"`
	// Error is the last error in words ("" when allocated and healthy).
	Error      string           `json:"error,omitempty"`
	Allocation *site.Allocation `json:"allocation,omitempty"`
	Voter      bool             `json:"voter"`
	VoterHash  string           `json:"voter_hash"`
	// RaftState is "leader", "follower", "candidate" or "" (non-voter).
	RaftState string `json:"raft_state,omitempty"`
	// Leader is the current raft leader's site name, if known.
	Leader string `json:"leader,omitempty"`
	// Problems lists everything an operator should look at, e.g. peers with
	// another voter set or the local record in conflict.
	Problems []string `json:"problems,omitempty"`
	// Insecure is true when the allocator runs without a fleet key.
	Insecure bool `json:"insecure,omitempty"`
}

// Phase is Status().Phase.
func (a *Allocator) Phase() string { return a.Status().Phase }

// PublicKey is this site's static public key, to advertise in gossip
// metadata (membership.Meta.Key): voters accept this site's requests only
// from the address it gossips from, over a channel proving this key.
func (a *Allocator) PublicKey() []byte { return a.self.key.Public }

// Released is, on a voter, the raft index of the last release its replica
// applied (0 before any, and on other sites), to advertise in gossip
// metadata: every site re-asserts its allocation when a voter's value
// changes. Subscribe signals when it changes.
func (a *Allocator) Released() uint64 {
	if !a.voter {
		return 0
	}
	return a.fsm.releasedIndex()
}

// VoterHash is Config.VoterSetHash, to advertise in gossip metadata.
func (a *Allocator) VoterHash() string { return a.hash }

// Local returns this site's committed allocation, if it holds one. A
// recorded allocation is returned from the start (it never changes).
func (a *Allocator) Local() (site.Allocation, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec == nil {
		return site.Allocation{}, false
	}
	return *a.rec, true
}

// Wait blocks until the site holds an allocation or ctx is done.
func (a *Allocator) Wait(ctx context.Context) (site.Allocation, error) {
	select {
	case <-a.allocated:
		al, _ := a.Local()
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
func (a *Allocator) readBarrier() error {
	if term := a.raft.CurrentTerm(); a.readTerm.Load() != term {
		if err := a.raft.Barrier(a.cfg.RequestTimeout).Error(); err != nil {
			return err
		}
		a.readTerm.Store(term)
	}
	return a.raft.VerifyLeader().Error()
}

// Table returns every committed allocation, sorted by site, as the Raft
// leader holds it once a quorum has confirmed its leadership (never a
// follower's possibly lagging replica): a site missing from it holds
// nothing. It needs a voter quorum (ErrNoQuorum without one).
func (a *Allocator) Table(ctx context.Context) ([]site.Allocation, error) {
	resp, err := a.send(ctx, request{Op: rpcTable, VoterHash: a.hash})
	if err != nil {
		return nil, err
	}
	return resp.Table, nil
}

// Release frees site's allocation through the leader so that its values can
// be reused. Only for sites that are gone for good: a live site whose values
// are reused is exactly the failure this package prevents. Returns
// ErrUnknownSite if the site holds nothing.
func (a *Allocator) Release(ctx context.Context, site string) error {
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

// Status returns a snapshot for the status API and metrics.
func (a *Allocator) Status() Status {
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

// Subscribe returns a channel that receives (coalesced) whenever Status
// changes, e.g. to republish gossip metadata. Closed on Close.
func (a *Allocator) Subscribe() <-chan struct{} { return a.changes.Subscribe() }

func (a *Allocator) notify() { a.changes.Notify() }
