package agent

// The agent as the API's backend: status, peers and release (BGP peers are
// in bgppeers.go).

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/membership"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
	"github.com/tfsite/tfsite/internal/version"
)

// Status implements api.Backend.
func (a *Agent) Status(ctx context.Context) api.Status {
	a.mu.Lock()
	cfg, phase, lastErr, under, members, allocator := a.cfg, a.phase, a.lastErr, a.under, a.members, a.alloc
	sources := a.sources
	a.mu.Unlock()
	st := api.Status{
		Site: cfg.Site, Phase: phase, Version: version.Version, LastError: lastErr,
		Voters: cfg.Voters, Voter: slices.Contains(cfg.Voters, cfg.Site), ConfigSources: sources,
		Peers: []api.Peer{}, BringUp: a.bringUpStatus(cfg.BringUp.Enabled, cfg.StateDir),
	}
	switch {
	case under != nil:
		st.Underlay = &api.Underlay{Interface: under.Interface, Address: under.Address, Gateway: under.Gateway, GatewaySource: under.GatewaySource}
	case cfg.Underlay.Disabled:
		st.Underlay = &api.Underlay{Disabled: true}
	}
	if allocator != nil {
		as := allocator.Status()
		st.Phase = as.Phase
		if as.Allocation != nil {
			st.Allocation = apiAllocation(as.Allocation)
		}
		st.RaftState, st.Leader, st.Insecure = as.RaftState, as.Leader, as.Insecure
		st.Problems = append(st.Problems, as.Problems...)
		if as.Error != "" {
			st.LastError = as.Error
		}
	}
	if members != nil {
		st.Gossip = members.LocalAddr().String()
		st.GossipHealth = members.HealthScore()
		ms, problems := members.View()
		st.Problems = append(st.Problems, problems...)
		st.Peers = peersOf(ms, cfg)
	}
	return st
}

// Peers implements api.Backend.
func (a *Agent) Peers(ctx context.Context) []api.Peer {
	a.mu.Lock()
	members, cfg := a.members, a.cfg
	a.mu.Unlock()
	if members == nil {
		return []api.Peer{}
	}
	return peersOf(members.Members(), cfg)
}

// peersOf maps the other members onto the API's peers.
func peersOf(members []membership.Member, cfg config.Config) []api.Peer {
	out := []api.Peer{}
	for _, m := range members {
		if m.Local {
			continue
		}
		p := api.Peer{Site: m.Site, State: string(m.State), Address: m.Addr.String(), Version: m.Meta.Version, Voter: slices.Contains(cfg.Voters, m.Site)}
		if m.Meta.Underlay.IsValid() {
			p.Underlay = m.Meta.Underlay.String()
		}
		if m.Meta.Alloc != nil {
			p.Allocation = apiAllocation(m.Meta.Alloc)
		}
		out = append(out, p)
	}
	return out
}

func apiAllocation(al *site.Allocation) *api.Allocation {
	return &api.Allocation{ASN: al.ASN, Pod: al.Pod, Service: al.Service, Fabric: al.Fabric}
}

// Release implements api.Backend: it frees a departed site's allocation.
// The local site and sites gossip sees alive or suspect are refused.
func (a *Agent) Release(ctx context.Context, site string) error {
	a.mu.Lock()
	cfg, members, allocator := a.cfg, a.members, a.alloc
	a.mu.Unlock()
	if allocator == nil {
		return fmt.Errorf("%w: the agent is not running the allocator yet (phase %s)", api.ErrUnavailable, a.Status(ctx).Phase)
	}
	if err := sitename.Validate(site); err != nil {
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	if site == cfg.Site {
		return fmt.Errorf("%w: %q is this site; release it on a voter after shutting this one down", api.ErrConflict, site)
	}
	for _, m := range members.Members() {
		if m.Site == site && (m.State == membership.StateAlive || m.State == membership.StateSuspect) {
			return fmt.Errorf("%w: site %q is %s in gossip; stop it for good before releasing its allocation", api.ErrConflict, site, m.State)
		}
	}
	err := allocator.Release(ctx, site)
	switch {
	case err == nil:
		a.log.Warn("allocation released by the local operator (API)", "site", site)
		return nil
	case errors.Is(err, alloc.ErrUnknownSite):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, alloc.ErrRefused):
		return fmt.Errorf("%w: %v", api.ErrConflict, err)
	case errors.Is(err, alloc.ErrNoQuorum), errors.Is(err, alloc.ErrNoVoter):
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	return fmt.Errorf("releasing %q: %w", site, err)
}
