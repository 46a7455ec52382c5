// Package alloc gives every tfsite site a unique BGP ASN and non-overlapping
// pod, service and IP-fabric prefixes.
//
// Uniqueness is committed through hashicorp/raft among a fixed, configured
// set of voter sites (the Consul pattern: gossip for membership, Raft for
// consistency). Non-voter sites ask a voter over a small authenticated RPC
// endpoint that voters advertise in gossip metadata. The replicated state
// machine only accepts an assignment that is disjoint from every assignment
// it already holds, so two sites can never hold the same ASN or overlapping
// prefixes, whatever the network does. See docs/allocation.md.
package alloc

import (
	"errors"

	"github.com/tfsite/tfsite/agent/pools"
	"github.com/tfsite/tfsite/agent/site"
)

// Sentinel errors callers branch on. Errors returned by this package wrap them.
var (
	// ErrExhausted: a pool has no free ASN or prefix left for a new site.
	ErrExhausted = pools.ErrExhausted
	// ErrNoQuorum: no voter majority is reachable; new allocations stall
	// (they are never made without quorum).
	ErrNoQuorum = errors.New("no voter quorum reachable")
	// ErrNoVoter: no voter site is known through gossip yet.
	ErrNoVoter = errors.New("no voter site reachable")
	// ErrConflict: the request collides with what is committed (a recorded
	// allocation overlapping another site's, a site held by another node,
	// a pin overlapping another site).
	ErrConflict = errors.New("allocation conflict")
	// ErrUnknownSite: the site holds no allocation.
	ErrUnknownSite = errors.New("unknown site")
	// ErrVoterMismatch: the peer's configured voter set differs from ours.
	ErrVoterMismatch = errors.New("voter set mismatch")
	// ErrAuth: a peer could not prove it holds the shared key.
	ErrAuth = errors.New("authentication failed")
	// ErrRefused: a voter refused the request for who sent it: a site
	// asking for another site or from an address it does not gossip from,
	// a site not alive in gossip, a release not from a voter's operator or
	// of a site alive in gossip (docs/allocation.md, "Trust model").
	ErrRefused = errors.New("request refused")
	// ErrClosed: the allocator was closed.
	ErrClosed = errors.New("allocator closed")
)

// MemberSource is the allocator's view of the membership.
type MemberSource interface {
	// Peers returns every known site except the local one.
	Peers() []site.Peer
	// Subscribe returns a channel that receives (coalesced) whenever the
	// membership changes; it is closed when the source closes.
	Subscribe() <-chan struct{}
}
