package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/membership"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// BGPPeersFile (under the state dir) keeps the BGP peers across agent
// restarts. Gossip forgets a dead site soon after it dies, and a restarted
// agent never heard of a site that was already gone, yet the departed site's
// allocation, and so its peering, stands until an operator releases it.
const BGPPeersFile = "bgp-peers.json"

// BGPPeers implements api.Backend: every other site in the committed
// allocation table, with its committed ASN and pod prefix, at the underlay
// address it publishes in gossip. The table is the one source of truth: a
// departed site stays a peer until an operator releases it, a released one
// goes as soon as the table drops it. Addresses are kept in
// <stateDir>/bgp-peers.json (written atomically when the set changes), because
// gossip forgets a dead site after a while and a restarted agent never heard
// of one that was already gone. Without a table (no quorum reachable) the
// saved set is served as it is. TF's peering (bring-up) and `tfsite peering
// --socket` both read this.
func (a *Agent) BGPPeers(ctx context.Context) ([]site.BGPPeer, error) {
	a.mu.Lock()
	members, allocator := a.members, a.alloc
	path := filepath.Join(a.cfg.StateDir, BGPPeersFile)
	a.mu.Unlock()
	if members == nil || allocator == nil {
		return nil, fmt.Errorf("%w: the agent is not running membership and the allocator yet (phase %s)", api.ErrUnavailable, a.Status(ctx).Phase)
	}
	a.peersMu.Lock()
	defer a.peersMu.Unlock()
	if a.knownPeers == nil {
		a.knownPeers = map[string]site.BGPPeer{}
		saved, err := readBGPPeers(path)
		if err != nil {
			a.log.Warn("BGP peer cache unreadable; rebuilding it from the allocation table and gossip (a departed site that gossip forgot is missing until it returns)", "err", err)
		}
		for _, p := range saved {
			a.knownPeers[p.Site] = p
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	table, err := allocator.Table(tctx)
	if err != nil {
		a.log.Debug("allocation table unavailable; serving the saved BGP peers", "err", err)
	} else {
		next := peersFromTable(a.cfg.Site, table, underlayAddrs(members.Members()), a.knownPeers)
		if !maps.Equal(next, a.knownPeers) {
			a.knownPeers = next
			if err := writeBGPPeers(path, sortedPeers(next)); err != nil {
				a.log.Warn("BGP peers not saved; an agent restart may forget departed sites", "err", err)
			}
		}
	}
	return sortedPeers(a.knownPeers), nil
}

// peersFromTable is the peer set the committed table implies: every site but
// self, at its gossip underlay address or, when gossip no longer knows it,
// the address saved before. A site never seen anywhere is left out until
// gossip says where it is.
func peersFromTable(self string, table []site.Allocation, addrs map[string]netip.Addr, saved map[string]site.BGPPeer) map[string]site.BGPPeer {
	out := make(map[string]site.BGPPeer, len(table))
	for _, al := range table {
		if al.Site == self {
			continue
		}
		addr, ok := addrs[al.Site]
		if !ok {
			addr = saved[al.Site].Address
		}
		if addr.IsValid() {
			out[al.Site] = site.BGPPeer{Site: al.Site, ASN: al.ASN, Address: addr, Pod: al.Pod}
		}
	}
	return out
}

// underlayAddrs maps every remote member publishing an underlay address to it.
func underlayAddrs(ms []membership.Member) map[string]netip.Addr {
	out := make(map[string]netip.Addr, len(ms))
	for _, m := range ms {
		if !m.Local && m.Meta.Underlay.IsValid() {
			out[m.Site] = m.Meta.Underlay
		}
	}
	return out
}

func sortedPeers(m map[string]site.BGPPeer) []site.BGPPeer {
	out := make([]site.BGPPeer, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[name])
	}
	return out
}

// writeBGPPeers saves peers (sorted by site) atomically.
func writeBGPPeers(path string, peers []site.BGPPeer) error {
	b, err := json.MarshalIndent(peers, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding BGP peers: %w", err)
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// readBGPPeers loads the saved peers; no file is no peers.
func readBGPPeers(path string) ([]site.BGPPeer, error) {
	peers, _, err := atomicfile.Read(path, "BGP peer cache", "delete the file: the agent rebuilds it from gossip", DecodeBGPPeers)
	return peers, err
}

// DecodeBGPPeers strictly decodes a saved BGP peer list: a JSON array of
// {site, asn, address}, each site once, with a name, an ASN and an address.
func DecodeBGPPeers(b []byte) ([]site.BGPPeer, error) {
	var peers []site.BGPPeer
	if err := strictjson.Unmarshal(b, &peers); err != nil {
		return nil, fmt.Errorf("not a BGP peer list: %w", err)
	}
	seen := make(map[string]bool, len(peers))
	for i, p := range peers {
		switch {
		case p.Site == "":
			return nil, fmt.Errorf("peer %d has no site name", i)
		case seen[p.Site]:
			return nil, fmt.Errorf("site %q is listed twice", p.Site)
		case p.ASN == 0:
			return nil, fmt.Errorf("site %q has no ASN", p.Site)
		case !p.Address.IsValid():
			return nil, fmt.Errorf("site %q has no address", p.Site)
		}
		seen[p.Site] = true
	}
	return peers, nil
}

// bringUpStatus is what the bring-up process last reported (nil when
// bring-up is off).
func (a *Agent) bringUpStatus(enabled bool, stateDir string) *api.BringUp {
	b, err := api.ReadBringUp(stateDir)
	switch {
	case err != nil:
		return &api.BringUp{Phase: "unknown", Error: err.Error()}
	case b != nil:
		return b
	case enabled:
		return &api.BringUp{Phase: api.BringUpNotStarted, Error: "no report from the bring-up process yet (systemctl status tfsite-bringup; or run tfsite bringup)"}
	}
	return nil
}
