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
	"fmt"
	"net/netip"
	"sort"

	"github.com/tfsite/tfsite/agent/sitename"
)

// Allocation is what one site holds: its BGP ASN and its three prefixes.
type Allocation struct {
	Site    string       `json:"site"`
	ASN     uint32       `json:"asn"`
	Pod     netip.Prefix `json:"pod"`
	Service netip.Prefix `json:"service"`
	Fabric  netip.Prefix `json:"fabric"`
}

// Prefixes returns the site's pod, service and fabric prefixes in that order.
func (a Allocation) Prefixes() [3]netip.Prefix { return [3]netip.Prefix{a.Pod, a.Service, a.Fabric} }

// IsZero reports whether a holds nothing.
func (a Allocation) IsZero() bool { return a == Allocation{} }

// Validate checks that a is complete and well formed.
func (a Allocation) Validate() error {
	var errs []error
	if err := sitename.Validate(a.Site); err != nil {
		errs = append(errs, err)
	}
	if a.ASN == 0 {
		errs = append(errs, fmt.Errorf("allocation %q: asn is 0", a.Site))
	}
	for i, p := range a.Prefixes() {
		name := [3]string{"pod", "service", "fabric"}[i]
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("allocation %q: %s prefix missing", a.Site, name))
		} else if p != p.Masked() {
			errs = append(errs, fmt.Errorf("allocation %q: %s prefix %s has host bits set (use %s)", a.Site, name, p, p.Masked()))
		}
	}
	if errs == nil {
		p := a.Prefixes()
		for i := 0; i < 3; i++ {
			for j := i + 1; j < 3; j++ {
				if p[i].Overlaps(p[j]) {
					errs = append(errs, fmt.Errorf("allocation %q: prefixes %s and %s overlap", a.Site, p[i], p[j]))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (a Allocation) String() string {
	return fmt.Sprintf("%s asn=%d pod=%s service=%s fabric=%s", a.Site, a.ASN, a.Pod, a.Service, a.Fabric)
}

// Sentinel errors callers branch on. Errors returned by this package wrap them.
var (
	// ErrExhausted: a pool has no free ASN or prefix left for a new site.
	ErrExhausted = errors.New("allocation pool exhausted")
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

// CheckDisjoint returns an error naming every pair of allocations that share
// an ASN or hold overlapping prefixes (any kind against any kind), and every
// site that appears twice with different values. nil means the set is safe.
func CheckDisjoint(allocs []Allocation) error {
	as := append([]Allocation(nil), allocs...)
	sort.Slice(as, func(i, j int) bool { return as[i].Site < as[j].Site })
	var errs []error
	for i := range as {
		for j := i + 1; j < len(as); j++ {
			a, b := as[i], as[j]
			if a.Site == b.Site {
				if a != b {
					errs = append(errs, fmt.Errorf("site %q held twice: %v and %v", a.Site, a, b))
				}
				continue
			}
			if a.ASN == b.ASN {
				errs = append(errs, fmt.Errorf("duplicate ASN %d: sites %q and %q", a.ASN, a.Site, b.Site))
			}
			for _, p := range a.Prefixes() {
				for _, q := range b.Prefixes() {
					if p.IsValid() && q.IsValid() && p.Overlaps(q) {
						errs = append(errs, fmt.Errorf("overlapping prefixes: %s (site %q) and %s (site %q)", p, a.Site, q, b.Site))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// KeyLen is the length of a site's static public key (Curve25519).
const KeyLen = 32

// Peer is what the allocator needs to know about another site; the
// membership layer supplies it from gossip metadata.
type Peer struct {
	Site string
	// Addr is the address the site gossips from (its memberlist node
	// address); a voter accepts the site's allocation requests only from it.
	Addr netip.Addr
	// Key is the site's allocator static public key as it publishes it in
	// gossip (nil if it publishes none).
	Key []byte
	// Endpoint is the site's allocator endpoint (raft + RPC); valid only for
	// voter sites.
	Endpoint netip.AddrPort
	// VoterHash is the peer's VoterSetHash; "" if unknown.
	VoterHash string
	// Alive is true for alive and suspect members, false for dead and
	// departed ones.
	Alive bool
	// Released is what a voter publishes as Allocator.Released (0 if
	// unknown).
	Released uint64
}

// MemberSource is the allocator's view of the membership.
type MemberSource interface {
	// Peers returns every known site except the local one.
	Peers() []Peer
	// Subscribe returns a channel that receives (coalesced) whenever the
	// membership changes; it is closed when the source closes.
	Subscribe() <-chan struct{}
}
