package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/membership"
)

// BGPPeers implements api.Backend: every other site holding an allocation,
// at the underlay address and ASN it published in gossip. A site stays a
// peer while its allocation exists, also after gossip forgot it (memberlist
// drops dead members after a while): departed sites keep their allocation
// until an operator releases it, and their BGP peering until then. Released
// sites are dropped as soon as the committed table no longer lists them.
// The bring-up process (tfsite bringup) configures TF's peering from this.
func (a *Agent) BGPPeers(ctx context.Context) ([]api.BGPPeer, error) {
	a.mu.Lock()
	members, allocator := a.members, a.alloc
	a.mu.Unlock()
	if members == nil || allocator == nil {
		return nil, fmt.Errorf("%w: the agent is not running membership and the allocator yet (phase %s)", api.ErrUnavailable, a.Status(ctx).Phase)
	}
	a.peersMu.Lock()
	defer a.peersMu.Unlock()
	if a.knownPeers == nil {
		a.knownPeers = map[string]api.BGPPeer{}
	}
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
	return out, nil
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
