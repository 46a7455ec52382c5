package bringup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/peering"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// ErrDisabled: the config has bring-up off (bringUp.enabled: false).
var ErrDisabled = errors.New("bring-up is off: set bringUp.enabled: true in the config or tfsite.bringup=on on the kernel command line")

// DefaultPoll is how often the daemon asks the agent for changes.
const DefaultPoll = time.Second

// Daemon is the bring-up process (`tfsite bringup`, tfsite-bringup.service).
// It runs apart from the agent so that the agent — gossip, allocation, the
// API — stays small and keeps serving the other sites whatever bring-up's
// Kubernetes client does. It reads what the agent knows through the agent's
// API socket (this site's allocation and underlay, the BGP peers), wakes a
// BringUp pass when that changes, and reports BringUp's status in
// api.BringUpStatusFile, which the agent serves in its status.
type Daemon struct {
	log      *slog.Logger
	poll     time.Duration
	stateDir string
	client   *api.Client
	src      *apiSource
	b        *BringUp

	netOpts   []netguard.Option
	wrapGuard func(*netguard.Guard) Guard

	closeOnce sync.Once
}

// DaemonOption adjusts a Daemon (tests).
type DaemonOption func(*Daemon)

// WithNetGuard passes options (kernel, prober seams) to the netguard.Guard
// that reverts a vrouter start which cuts the host off.
func WithNetGuard(opts ...netguard.Option) DaemonOption {
	return func(d *Daemon) { d.netOpts = append(d.netOpts, opts...) }
}

// WithGuard wraps the guard (tests run it inside a network namespace).
func WithGuard(f func(*netguard.Guard) Guard) DaemonOption {
	return func(d *Daemon) { d.wrapGuard = f }
}

// WithPoll sets how often the agent is asked for changes.
func WithPoll(p time.Duration) DaemonOption {
	return func(d *Daemon) { d.poll = p }
}

// FromConfig maps the site config's bringUp section onto a Config.
func FromConfig(cfg config.Config) Config {
	b := cfg.BringUp
	bc := Default()
	bc.StateDir = filepath.Join(cfg.StateDir, config.BringUpStateDir)
	bc.Kubeconfig, bc.Kubeadm, bc.KubeadmArgs = b.Kubeconfig, b.Kubeadm, slices.Clone(b.KubeadmArgs)
	bc.Preflight = !b.Preflight.Skip
	pc := kube.DefaultPreflightConfig()
	if b.Profile == config.ProfileLab {
		bc.Profile = config.ProfileLab
		pc.MinMemory, pc.MinDisk = config.LabMinMemoryGiB*kube.GiB, config.LabMinDiskGB*kube.GB
	}
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
	return bc
}

// NewDaemon builds the bring-up process's parts from the site config; it
// returns ErrDisabled when bring-up is off. The guard shares the state dir
// of `tfsite net` (config.NetStateDir), so a crash during the vrouter start
// is reverted at the next boot like any other pending change.
func NewDaemon(cfg config.Config, log *slog.Logger, opts ...DaemonOption) (*Daemon, error) {
	if !cfg.BringUp.Enabled {
		return nil, ErrDisabled
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{log: log, poll: DefaultPoll, stateDir: cfg.StateDir, client: api.NewClient(cfg.APISocket)}
	for _, o := range opts {
		o(d)
	}
	if d.poll <= 0 {
		d.poll = DefaultPoll
	}
	bc := FromConfig(cfg)
	guard, err := netguard.New(bc.GuardConfig(filepath.Join(cfg.StateDir, config.NetStateDir)), log.With("component", "netguard"), d.netOpts...)
	if err != nil {
		return nil, fmt.Errorf("bring-up guard: %w", err)
	}
	var g Guard = guard
	if d.wrapGuard != nil {
		g = d.wrapGuard(guard)
	}
	d.src = &apiSource{client: d.client}
	b, err := New(bc, d.src, g, log)
	if err != nil {
		return nil, err
	}
	d.b = b
	return d, nil
}

// Run runs bring-up until ctx is done (it returns nil then): every poll it
// reads the agent's status, wakes a pass when this site's allocation or
// underlay or the BGP peers changed, and writes the bring-up report when it
// changed.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.b.Run(ctx) }()
	t := time.NewTicker(d.poll)
	defer t.Stop()
	var key, reported string
	agentDown := false
	for {
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := d.client.Status(qctx)
		qcancel()
		switch {
		case err != nil && ctx.Err() == nil:
			if !agentDown {
				d.log.Warn("agent unreachable; bring-up keeps what it knew", "err", err)
			}
			agentDown = true
		case err == nil:
			if agentDown {
				d.log.Info("agent reachable again")
			}
			agentDown = false
			d.src.set(st)
			if k := wakeKey(st); k != key {
				key = k
				d.b.Wake()
			}
		}
		reported = d.writeReport(reported)
		select {
		case <-ctx.Done():
			<-done
			d.writeReport(reported)
			return nil
		case err := <-done:
			d.writeReport(reported)
			return err
		case <-t.C:
		}
	}
}

// writeReport writes BringUp's status when it changed since last (the previous
// report's encoding) and returns the new encoding.
func (d *Daemon) writeReport(last string) string {
	rep := report(d.b.Status())
	enc, _ := json.Marshal(rep)
	if string(enc) == last {
		return last
	}
	rep.Updated = time.Now().UTC()
	if err := api.WriteBringUp(d.stateDir, rep); err != nil {
		d.log.Warn("bring-up report not written", "err", err)
		return last
	}
	return string(enc)
}

// Close stops Run; safe to call twice.
func (d *Daemon) Close() { d.closeOnce.Do(d.b.Close) }

// report maps a Status onto the API's report.
func report(st Status) *api.BringUp {
	out := &api.BringUp{Phase: st.Phase, Error: st.Error, Waiting: st.Waiting, PeersConfigured: st.PeersConfigured, Profile: st.Profile}
	for _, s := range st.Steps {
		out.Steps = append(out.Steps, api.BringUpStep{Name: s.Name, OK: s.OK, Detail: s.Detail, At: s.At})
	}
	if r := st.Running; r != nil {
		out.Running = &api.BringUpRunning{Name: r.Name, Since: r.Since}
	}
	if v := st.Vrouter; v != nil {
		out.Vrouter = &api.VrouterOutcome{Confirmed: v.Confirmed, Reason: v.Reason, Ended: v.Ended}
	}
	return out
}

// wakeKey identifies what a pass depends on in the agent's status: this
// site's allocation and underlay and the BGP peers gossip shows (site,
// underlay, ASN of every peer holding an allocation). Gossip state and
// version churn do not change it.
func wakeKey(st api.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", st.Site)
	if a := st.Allocation; a != nil {
		fmt.Fprintf(&b, "alloc %d %s %s %s\n", a.ASN, a.Pod, a.Service, a.Fabric)
	}
	if u := st.Underlay; u != nil {
		fmt.Fprintf(&b, "underlay %s %s %s\n", u.Interface, u.Address, u.Gateway)
	}
	for _, p := range st.Peers {
		if p.Allocation != nil && p.Underlay != "" {
			fmt.Fprintf(&b, "peer %s %s %d\n", p.Site, p.Underlay, p.Allocation.ASN)
		}
	}
	return b.String()
}

// apiSource is the Source the daemon hands BringUp: the agent's last status
// and its BGP peer list, both read through the agent's API.
type apiSource struct {
	client *api.Client

	mu sync.Mutex
	st *api.Status
}

var _ Source = (*apiSource)(nil)

func (s *apiSource) set(st api.Status) {
	s.mu.Lock()
	s.st = &st
	s.mu.Unlock()
}

// Params implements Source from the agent's last status (SiteFromStatus).
func (s *apiSource) Params() (kube.SiteParams, error) {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	if st == nil {
		return kube.SiteParams{}, errors.New("the agent has not answered on its API socket yet")
	}
	return SiteFromStatus(*st)
}

// ErrNoUnderlay means the agent's status lacks the discovered underlay
// (interface, address with its prefix length, gateway) that bring-up
// configures the node and vrouter with.
var ErrNoUnderlay = errors.New("the agent has not discovered the underlay")

// ErrAllocationConflict means the agent reports that another site now holds
// this site's recorded values (or name): bring-up takes no step with them.
var ErrAllocationConflict = errors.New("this site's allocation conflicts with another site's")

// SiteFromStatus maps an agent's status onto site parameters: the site's
// name and allocation, and the underlay interface, address and gateway that
// discovery found. It is the one mapping both bring-up and `tfsite render
// --socket` use. p carries whatever the status holds even when err is not
// nil; err wraps peering.ErrNotAllocated (no committed allocation yet) or
// ErrNoUnderlay, and says what is missing.
func SiteFromStatus(st api.Status) (p kube.SiteParams, err error) {
	p.Site = st.Site
	var errs []error
	if al := st.Allocation; al != nil {
		p.ASN, p.Pod, p.Service, p.Fabric = al.ASN, al.Pod, al.Service, al.Fabric
		if st.Phase == api.PhaseConflict {
			errs = append(errs, fmt.Errorf("%w (%s): bring-up is paused, nothing is configured with these values; `tfsite status` says which site holds them (docs/allocation.md)", ErrAllocationConflict, st.LastError))
		}
	} else {
		errs = append(errs, fmt.Errorf("%w: site %q is in phase %s; wait for `tfsite status --allocated`", peering.ErrNotAllocated, st.Site, st.Phase))
	}
	switch u := st.Underlay; {
	case u == nil:
		errs = append(errs, fmt.Errorf("%w yet", ErrNoUnderlay))
	case u.Disabled:
		errs = append(errs, fmt.Errorf("%w: discovery is off on this agent (--no-underlay / underlay.disabled)", ErrNoUnderlay))
	default:
		p.PhysicalInterface = u.Interface
		addr, err1 := netip.ParsePrefix(u.Address)
		gw, err2 := netip.ParseAddr(u.Gateway)
		p.AdvertiseAddress, p.Gateway = addr.Addr(), gw
		if u.Interface == "" || err1 != nil || err2 != nil {
			errs = append(errs, fmt.Errorf("%w: interface %q, address %q, gateway %q (discovery has not finished)", ErrNoUnderlay, u.Interface, u.Address, u.Gateway))
		}
	}
	switch len(errs) {
	case 0:
		return p, nil
	case 1:
		return p, errs[0]
	}
	return p, fmt.Errorf("%w; %w", errs[0], errs[1]) // one line: it is the bring-up report's "waiting"
}

// Peers implements Source through GET /v1/bgp-peers.
func (s *apiSource) Peers(ctx context.Context) ([]site.BGPPeer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	peers, err := s.client.BGPPeers(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking the agent for the BGP peers: %w", err)
	}
	return peers, nil
}
