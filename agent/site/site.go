// Package site holds the values every layer shares about a site: what it
// holds from the pools (Allocation) and what is known of a peer site (Peer).
// It is a leaf: configuration, membership and the allocator all import it
// without importing each other.
package site

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

// BGPPeer is another site this site BGP-peers with: a site in the committed
// allocation table, with the ASN and pod prefix committed for it and the
// underlay address it publishes in gossip (where its control node and BGP
// speaker listen; also its BGP identifier). TF's peering and the rendered
// BIRD/FRR configuration are both built from this one list
// (GET /v1/bgp-peers).
type BGPPeer struct {
	Site    string       `json:"site"`
	ASN     uint32       `json:"asn"`
	Address netip.Addr   `json:"address"`
	Pod     netip.Prefix `json:"pod,omitzero"`
}
