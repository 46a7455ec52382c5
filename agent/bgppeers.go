package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/membership"
	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// BGPPeersFile (under the state dir) keeps the BGP peers across agent
// restarts. Gossip forgets a dead site soon after it dies, and a restarted
// agent never heard of a site that was already gone, yet the departed site's
// allocation, and so its peering, stands until an operator releases it.
const BGPPeersFile = "bgp-peers.json"

// BGPPeers implements api.Backend: every other site holding an allocation,
// at the underlay address and ASN it published in gossip. A site stays a
// peer while its allocation exists, also after gossip forgot it (memberlist
// drops dead members after a while): departed sites keep their allocation
// until an operator releases it, and their BGP peering until then. Released
// sites are dropped as soon as the committed table no longer lists them.
// The peer set is kept in <stateDir>/bgp-peers.json (written atomically
// when it changes), so an agent restart does not forget a departed site.
// The bring-up process (tfsite bringup) configures TF's peering from this.
func (a *Agent) BGPPeers(ctx context.Context) ([]api.BGPPeer, error) {
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
		a.knownPeers = map[string]api.BGPPeer{}
		saved, err := readBGPPeers(path)
		if err != nil {
			a.log.Warn("BGP peer cache unreadable; rebuilding it from gossip (a departed site that gossip forgot is missing until it returns)", "err", err)
		}
		for _, p := range saved {
			a.knownPeers[p.Site] = p
		}
	}
	before := maps.Clone(a.knownPeers)
	for _, m := range members.Members() {
		if p, ok := bgpPeer(m); ok {
			a.knownPeers[m.Site] = p
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if table, err := allocator.Table(tctx); err == nil {
		held := make(map[string]bool, len(table))
		for _, al := range table {
			held[al.Site] = true
		}
		maps.DeleteFunc(a.knownPeers, func(site string, _ api.BGPPeer) bool { return !held[site] })
	} else {
		a.log.Debug("allocation table unavailable; keeping the known BGP peers", "err", err)
	}
	out := make([]api.BGPPeer, 0, len(a.knownPeers))
	for _, site := range slices.Sorted(maps.Keys(a.knownPeers)) {
		out = append(out, a.knownPeers[site])
	}
	if !maps.Equal(before, a.knownPeers) {
		if err := writeBGPPeers(path, out); err != nil {
			a.log.Warn("BGP peers not saved; an agent restart may forget departed sites", "err", err)
		}
	}
	return out, nil
}

// writeBGPPeers saves peers (sorted by site) atomically.
func writeBGPPeers(path string, peers []api.BGPPeer) error {
	b, err := json.MarshalIndent(peers, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding BGP peers: %w", err)
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// readBGPPeers loads the saved peers; no file is no peers.
func readBGPPeers(path string) ([]api.BGPPeer, error) {
	peers, _, err := atomicfile.Read(path, "BGP peer cache", "delete the file: the agent rebuilds it from gossip", DecodeBGPPeers)
	return peers, err
}

// DecodeBGPPeers strictly decodes a saved BGP peer list: a JSON array of
// {site, asn, address}, each site once, with a name, an ASN and an address.
func DecodeBGPPeers(b []byte) ([]api.BGPPeer, error) {
	var peers []api.BGPPeer
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

// bgpPeer maps a remote member holding an allocation to a BGP peer: its
// control node is at its underlay address.
func bgpPeer(m membership.Member) (api.BGPPeer, bool) {
	if m.Local || m.Meta.Alloc == nil || !m.Meta.Underlay.IsValid() {
		return api.BGPPeer{}, false
	}
	return api.BGPPeer{Site: m.Site, Address: m.Meta.Underlay, ASN: m.Meta.Alloc.ASN}, true
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
