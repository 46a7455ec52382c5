package alloc

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/tfsite/tfsite/agent/site"
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

// Allocator obtains and keeps this site's allocation. On voter sites it also
// runs a raft member of the allocation state machine and serves allocation
// RPC for other sites.
type Allocator struct {
	impl *allocator
}

// New opens the state dir (node identity, local record and, on voters, the
// raft stores) and, on voters, starts listening on cfg.BindAddr. It does not
// contact peers until Run.
func New(cfg Config, members MemberSource, log *slog.Logger) (*Allocator, error) {
	return newAllocator(cfg, members, log)
}

// Run obtains the site's allocation (re-asserting a recorded one) and keeps
// serving until ctx is done; it returns nil then. A conflict or exhaustion
// does not end Run: it is reported in Status and retried.
func (a *Allocator) Run(ctx context.Context) error { return a.impl.run(ctx) }

// Close stops raft and the listener and releases the state dir. Safe to call
// twice and concurrently with Run.
func (a *Allocator) Close() error { return a.impl.close() }

// Local returns this site's committed allocation, if it holds one. A
// recorded allocation is returned from the start (it never changes).
func (a *Allocator) Local() (site.Allocation, bool) { return a.impl.local() }

// Wait blocks until the site holds an allocation or ctx is done.
func (a *Allocator) Wait(ctx context.Context) (site.Allocation, error) { return a.impl.wait(ctx) }

// Table returns every committed allocation, sorted by site, as the Raft
// leader holds it once a quorum has confirmed its leadership (never a
// follower's possibly lagging replica): a site missing from it holds
// nothing. It needs a voter quorum (ErrNoQuorum without one).
func (a *Allocator) Table(ctx context.Context) ([]site.Allocation, error) { return a.impl.table(ctx) }

// Release frees site's allocation through the leader so that its values can
// be reused. Only for sites that are gone for good: a live site whose values
// are reused is exactly the failure this package prevents. Returns
// ErrUnknownSite if the site holds nothing.
func (a *Allocator) Release(ctx context.Context, site string) error {
	return a.impl.release(ctx, site)
}

// Status returns a snapshot for the status API and metrics.
func (a *Allocator) Status() Status { return a.impl.status() }

// Phase is Status().Phase.
func (a *Allocator) Phase() string { return a.impl.status().Phase }

// Endpoint is the allocator endpoint to advertise in gossip metadata (the
// actual bound port when BindAddr had port 0); invalid on non-voters.
func (a *Allocator) Endpoint() netip.AddrPort { return a.impl.endpoint() }

// PublicKey is this site's static public key, to advertise in gossip
// metadata (membership.Meta.Key): voters accept this site's requests only
// from the address it gossips from, over a channel proving this key.
func (a *Allocator) PublicKey() []byte { return a.impl.self.key.Public }

// Released is, on a voter, the raft index of the last release its replica
// applied (0 before any, and on other sites), to advertise in gossip
// metadata: every site re-asserts its allocation when a voter's value
// changes. Subscribe signals when it changes.
func (a *Allocator) Released() uint64 {
	if !a.impl.voter {
		return 0
	}
	return a.impl.fsm.releasedIndex()
}

// VoterHash is Config.VoterSetHash, to advertise in gossip metadata.
func (a *Allocator) VoterHash() string { return a.impl.hash }

// Subscribe returns a channel that receives (coalesced) whenever Status
// changes, e.g. to republish gossip metadata. Closed on Close.
func (a *Allocator) Subscribe() <-chan struct{} { return a.impl.subscribe() }
