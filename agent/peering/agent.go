package peering

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/site"
)

// ErrNotAllocated means the local site holds no allocation yet, so there is
// no ASN or pod prefix to announce.
var ErrNotAllocated = errors.New("site holds no allocation yet")

// FromAgent builds the local speaker and its peers from a running agent's API
// answers (GET /v1/status and GET /v1/bgp-peers): the same peer list TF's
// peering is built from, so an upstream router or a stand-in for TF's
// control node peers exactly with the sites TF does:
//
//   - local: the site name, its allocated ASN, its pod prefix as the announced
//     prefix, and its advertised gossip address as session source and router
//     id (on the appliance that is the discovered underlay address, which is
//     also what it publishes to the other sites);
//   - one peer per other site of the committed allocation table, at its
//     underlay address, with its committed ASN, accepting only its committed
//     pod prefix.
//
// Sites that are dead or left keep their session: their allocation holds
// until `tfsite site release`.
func FromAgent(st api.Status, peers []site.BGPPeer) (local Local, out []Peer, err error) {
	if st.Allocation == nil {
		return Local{}, nil, fmt.Errorf("%w: site %q is in phase %s; wait for `tfsite status --allocated`", ErrNotAllocated, st.Site, st.Phase)
	}
	addr, err := hostOf(st.Gossip)
	if err != nil {
		return Local{}, nil, fmt.Errorf("site %q: gossip address %q: %w", st.Site, st.Gossip, err)
	}
	local = Local{Site: st.Site, ASN: st.Allocation.ASN, RouterID: addr, Address: addr,
		Announce: []netip.Prefix{st.Allocation.Pod}, InstallRoutes: true}
	for _, p := range peers {
		if p.Site == st.Site {
			continue
		}
		pr := Peer{Name: p.Site, Address: p.Address, ASN: p.ASN}
		if p.Pod.IsValid() {
			pr.Accept = []netip.Prefix{p.Pod}
		}
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return local, out, nil
}

// hostOf reads "addr:port" or "addr".
func hostOf(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), nil
	}
	return netip.ParseAddr(s)
}
