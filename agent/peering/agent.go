package peering

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/tfsite/tfsite/agent/api"
)

// ErrNotAllocated means the local site holds no allocation yet, so there is
// no ASN or pod prefix to announce.
var ErrNotAllocated = errors.New("site holds no allocation yet")

// FromAgent builds the local speaker and its peers from a running agent's API
// answers (GET /v1/status and GET /v1/peers), so an upstream router or a
// stand-in for TF's control node peers exactly with the sites the agent
// knows:
//
//   - local: the site name, its allocated ASN, its pod prefix as the announced
//     prefix, and its advertised gossip address as session source and router
//     id (on the appliance that is the discovered underlay address);
//   - one peer per other site that publishes an allocation, at the address
//     of its gossip endpoint (the same notion as the local side, and proven
//     reachable; else the address in its gossip metadata), with its ASN,
//     accepting only its pod prefix.
//
// Sites that are dead or left keep their session: their allocation holds
// until `tfsite site release`. Sites without an allocation (or an address)
// are returned in skipped, "site: reason", for the caller to report.
func FromAgent(st api.Status, peers []api.Peer) (local Local, out []Peer, skipped []string, err error) {
	if st.Allocation == nil {
		return Local{}, nil, nil, fmt.Errorf("%w: site %q is in phase %s; wait for `tfsite status --allocated`", ErrNotAllocated, st.Site, st.Phase)
	}
	addr, err := hostOf(st.Gossip)
	if err != nil {
		return Local{}, nil, nil, fmt.Errorf("site %q: gossip address %q: %w", st.Site, st.Gossip, err)
	}
	local = Local{Site: st.Site, ASN: st.Allocation.ASN, RouterID: addr, Address: addr,
		Announce: []netip.Prefix{st.Allocation.Pod}, InstallRoutes: true}
	for _, p := range peers {
		if p.Site == st.Site {
			continue
		}
		if p.Allocation == nil {
			skipped = append(skipped, p.Site+": no allocation yet")
			continue
		}
		a, err := peerAddr(p)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", p.Site, err))
			continue
		}
		out = append(out, Peer{Name: p.Site, Address: a, ASN: p.Allocation.ASN, Accept: []netip.Prefix{p.Allocation.Pod}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return local, out, skipped, nil
}

// peerAddr is the host of a peer site's gossip endpoint, else the address in
// its gossip metadata.
func peerAddr(p api.Peer) (netip.Addr, error) {
	if a, err := hostOf(p.Address); err == nil {
		return a, nil
	}
	a, err := netip.ParseAddr(p.Underlay)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no usable address (gossip %q, underlay %q)", p.Address, p.Underlay)
	}
	return a, nil
}

// hostOf reads "addr:port" or "addr".
func hostOf(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), nil
	}
	return netip.ParseAddr(s)
}
