package agent

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/bringup"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/membership"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// BringUpStateDir is where bring-up keeps its files, relative to the agent's
// state dir.
const BringUpStateDir = "bringup"

// newBringUp builds the bring-up component from the config (nil when
// bring-up is off). Its guard shares the state dir of `tfsite net`, so a
// crash during the vrouter start is reverted like any other pending change.
func (a *Agent) newBringUp(cfg config.Config) (*bringup.BringUp, error) {
	if !cfg.BringUp.Enabled {
		return nil, nil
	}
	b := cfg.BringUp
	bc := bringup.Default()
	bc.StateDir = filepath.Join(cfg.StateDir, BringUpStateDir)
	bc.Kubeconfig, bc.Kubeadm, bc.KubeadmArgs = b.Kubeconfig, b.Kubeadm, slices.Clone(b.KubeadmArgs)
	bc.Preflight = !b.Preflight.Skip
	pc := kube.DefaultPreflightConfig()
	if b.Preflight.MinMemoryGiB > 0 {
		pc.MinMemory = b.Preflight.MinMemoryGiB * kube.GiB
	}
	if b.Preflight.MinDiskGB > 0 {
		pc.MinDisk = b.Preflight.MinDiskGB * kube.GB
	}
	if b.Preflight.MinCPUs > 0 {
		pc.MinCPUs = b.Preflight.MinCPUs
	}
	if b.Preflight.TFRelease != "" {
		pc.TFRelease = b.Preflight.TFRelease
	}
	pc.Kubeadm = b.Kubeadm
	bc.PreflightConfig = pc
	bc.TFRegistry, bc.TFTag, bc.ConfigAPI = b.TFRegistry, b.TFTag, b.ConfigAPI
	bc.GuardWindow, bc.VrouterStart = time.Duration(b.GuardWindow), time.Duration(b.VrouterStart)
	bc.ProbeTargets, bc.Interval = slices.Clone(b.ProbeTargets), time.Duration(b.Interval)

	guard, err := netguard.New(bc.GuardConfig(filepath.Join(cfg.StateDir, NetStateDir)), a.log.With("component", "netguard"), a.netOpts...)
	if err != nil {
		return nil, fmt.Errorf("bring-up guard: %w", err)
	}
	var g bringup.Guard = guard
	if a.bringUpGuard != nil {
		g = a.bringUpGuard(guard)
	}
	return bringup.New(bc, &siteSource{a: a, cfg: cfg, known: map[string]tf.Peer{}}, g, a.log)
}

// WithBringUpGuard wraps the guard bring-up uses (tests run it inside a
// network namespace).
func WithBringUpGuard(f func(*netguard.Guard) bringup.Guard) Option {
	return func(a *Agent) { a.bringUpGuard = f }
}

// siteSource is what bring-up reads from the agent: this site's parameters
// (allocation + discovered underlay) and the other sites to BGP-peer with.
type siteSource struct {
	a   *Agent
	cfg config.Config

	mu    sync.Mutex
	known map[string]tf.Peer // every site seen with an allocation, until released
}

var _ bringup.Source = (*siteSource)(nil)

// Params implements bringup.Source: false until the site holds an
// allocation and discovery found the underlay gateway.
func (s *siteSource) Params() (kube.SiteParams, bool) {
	s.a.mu.Lock()
	under, allocator := s.a.under, s.a.alloc
	s.a.mu.Unlock()
	if under == nil || allocator == nil {
		return kube.SiteParams{}, false
	}
	al, ok := allocator.Local()
	if !ok {
		return kube.SiteParams{}, false
	}
	addr, err1 := netip.ParsePrefix(under.Address)
	gw, err2 := netip.ParseAddr(under.Gateway)
	if err1 != nil || err2 != nil {
		return kube.SiteParams{}, false
	}
	return kube.SiteParams{
		Site: s.cfg.Site, ASN: al.ASN, Pod: al.Pod, Service: al.Service, Fabric: al.Fabric,
		AdvertiseAddress: addr.Addr(), Gateway: gw, PhysicalInterface: under.Interface,
		TFRegistry: s.cfg.BringUp.TFRegistry, TFTag: s.cfg.BringUp.TFTag,
	}, true
}

// Peers implements bringup.Source. A site stays a peer while its allocation
// exists, also after gossip forgot it (memberlist drops dead members after
// a while): departed sites keep their allocation until an operator releases
// it, and their BGP peering until then. Released sites are dropped as soon as
// the committed table no longer lists them.
func (s *siteSource) Peers() []tf.Peer {
	s.a.mu.Lock()
	members, allocator := s.a.members, s.a.alloc
	s.a.mu.Unlock()
	if members == nil || allocator == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range members.Members() {
		if p, ok := tfPeer(m); ok {
			s.known[m.Site] = p
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if table, err := allocator.Table(ctx); err == nil {
		held := make(map[string]bool, len(table))
		for _, al := range table {
			held[al.Site] = true
		}
		maps.DeleteFunc(s.known, func(site string, _ tf.Peer) bool { return !held[site] })
	} else {
		s.a.log.Debug("allocation table unavailable; keeping the known peers", "err", err)
	}
	out := make([]tf.Peer, 0, len(s.known))
	for _, site := range slices.Sorted(maps.Keys(s.known)) {
		out = append(out, s.known[site])
	}
	return out
}

// tfPeer maps a remote member holding an allocation to a TF BGP peer: its
// control node is at its underlay address.
func tfPeer(m membership.Member) (tf.Peer, bool) {
	if m.Local || m.Meta.Alloc == nil || !m.Meta.Underlay.IsValid() {
		return tf.Peer{}, false
	}
	return tf.Peer{Site: m.Site, Address: m.Meta.Underlay, ASN: m.Meta.Alloc.ASN}, true
}

// peerSetKey identifies the BGP peers gossip shows (site, address, ASN of
// every remote member holding an allocation), in member order (sorted).
func peerSetKey(members []membership.Member) string {
	var b strings.Builder
	for _, m := range members {
		if p, ok := tfPeer(m); ok {
			fmt.Fprintf(&b, "%s %s %d\n", p.Site, p.Address, p.ASN)
		}
	}
	return b.String()
}

// bringUpStatus maps the component's status onto the API's.
func bringUpStatus(b *bringup.BringUp) *api.BringUp {
	if b == nil {
		return nil
	}
	st := b.Status()
	out := &api.BringUp{Phase: st.Phase, Error: st.Error, PeersConfigured: st.PeersConfigured}
	for _, s := range st.Steps {
		out.Steps = append(out.Steps, api.BringUpStep{Name: s.Name, OK: s.OK, Detail: s.Detail, At: s.At})
	}
	if v := st.Vrouter; v != nil {
		out.Vrouter = &api.VrouterOutcome{Confirmed: v.Confirmed, Reason: v.Reason, Ended: v.Ended}
	}
	return out
}
