// Package agent is the one wiring point of the tfsite node agent: it reads
// nothing itself but takes a config.Config, and runs underlay discovery,
// membership (gossip), the allocator (raft among voters), the local API and
// the metrics endpoint, publishing the allocation into gossip metadata.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/membership"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/underlay"
	"github.com/tfsite/tfsite/internal/version"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// Option adjusts an Agent.
type Option func(*Agent)

// WithReload lets an agent without a site name re-read its configuration
// sources (every ReloadInterval) until one names the site.
func WithReload(f func(context.Context) (config.Loaded, error)) Option {
	return func(a *Agent) { a.reload = f }
}

// WithConfigSources records where the configuration came from (for status).
func WithConfigSources(sources []string) Option {
	return func(a *Agent) { a.sources = slices.Clone(sources) }
}

// WithDiscover replaces underlay.Discover (tests run it inside a netns).
func WithDiscover(f func(context.Context, underlay.Options, *slog.Logger) (*underlay.Result, error)) Option {
	return func(a *Agent) { a.discover = f }
}

// WithNetGuard passes options to the netguard.Guard that reverts a network
// change left pending by a crash (tests replace its kernel boundary).
func WithNetGuard(opts ...netguard.Option) Option {
	return func(a *Agent) { a.netOpts = slices.Clone(opts) }
}

// ReloadInterval is how often a waiting agent re-reads its sources.
var ReloadInterval = 5 * time.Second

// minPass is the least time between two passes of the reconcile loop.
const minPass = 200 * time.Millisecond

// loopInterval bounds how long the reconcile loop sleeps without an event.
const loopInterval = 5 * time.Second

// Agent runs one site.
type Agent struct {
	log       *slog.Logger
	reload    func(context.Context) (config.Loaded, error)
	discover  func(context.Context, underlay.Options, *slog.Logger) (*underlay.Result, error)
	sources   []string
	netOpts   []netguard.Option
	metrics   *api.Metrics
	server    *api.Server
	metricSrv *api.MetricsServer
	started   time.Time

	mu      sync.Mutex
	cfg     config.Config
	phase   string
	lastErr string
	under   *underlay.Result
	members *membership.Membership
	alloc   *alloc.Allocator

	peersMu    sync.Mutex
	knownPeers map[string]site.BGPPeer // BGPPeers: every site seen with an allocation, until released

	lastLoop  atomic.Int64 // unix nanos of the reconcile loop's last pass
	closeOnce sync.Once
}

// New checks cfg and opens the API socket and the metrics listener, so that
// status answers from the first moment. A config without a site name is
// accepted: the agent then waits in the needs-configuration phase.
func New(cfg config.Config, log *slog.Logger, opts ...Option) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.NeedsConfiguration() {
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("%w:\n%w", config.ErrInvalid, err)
		}
	}
	a := &Agent{log: log, cfg: cfg, discover: underlay.Discover, metrics: api.NewMetrics(), started: time.Now()}
	for _, o := range opts {
		o(a)
	}
	a.phase = api.PhaseStarting
	if cfg.NeedsConfiguration() {
		a.phase = api.PhaseNeedsConfiguration
	}
	srv, err := api.NewServer(api.ServerConfig{Socket: cfg.APISocket, Group: cfg.APISocketGroup}, a, log.With("component", "api"))
	if err != nil {
		return nil, err
	}
	a.server = srv
	if cfg.MetricsAddress != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddress)
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("listening for metrics on %s: %w; set metricsAddress or tfsite.metrics=off", cfg.MetricsAddress, err)
		}
		a.metricSrv = api.NewMetricsServer(ln, a.metrics, func(ctx context.Context) { a.metrics.Update(a.Status(ctx)) }, log.With("component", "metrics"))
	}
	return a, nil
}

// MetricsAddr is the bound metrics address (nil when disabled).
func (a *Agent) MetricsAddr() net.Addr {
	if a.metricSrv == nil {
		return nil
	}
	return a.metricSrv.Addr()
}

// Run runs the site until ctx is done; it returns nil then. An error means
// the agent cannot continue (e.g. the gossip port is taken).
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs first: stops everything wg waits for
	wg.Go(func() {
		if err := a.server.Run(ctx); err != nil {
			a.log.Error("API server stopped", "err", err)
		}
	})
	if a.metricSrv != nil {
		wg.Go(func() {
			if err := a.metricSrv.Run(ctx); err != nil {
				a.log.Error("metrics server stopped", "err", err)
			}
		})
	}
	wg.Go(func() { a.watchdog(ctx) })
	a.touch()

	cfg, ok := a.waitForConfig(ctx)
	if !ok {
		return nil
	}
	a.recoverNetwork(cfg)
	a.watchNetwork(ctx, cfg, &wg)
	if !a.discoverUnderlay(ctx, cfg, &wg) {
		return nil
	}
	if err := a.startCore(cfg); err != nil {
		a.setError(err)
		return err
	}
	a.mu.Lock()
	members, allocator := a.members, a.alloc
	a.mu.Unlock()
	// Whether the allocation was held before the allocator ran (a restart)
	// decides whether its commit is timed: read it before the allocator
	// starts, which may commit within milliseconds (a lone voter).
	_, heldAtStart := allocator.Local()
	started := time.Now()
	errc := make(chan error, 2)
	wg.Go(func() { errc <- members.Run(ctx) })
	wg.Go(func() { errc <- allocator.Run(ctx) })
	return a.reconcile(ctx, cfg, errc, heldAtStart, started)
}

// waitForConfig returns the config once it names a site (at once, usually).
func (a *Agent) waitForConfig(ctx context.Context) (config.Config, bool) {
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	if !cfg.NeedsConfiguration() {
		return cfg, true
	}
	a.log.Warn("no site name configured: waiting for configuration (kernel command line tfsite.site=, NoCloud seed, or /etc/tfsite/config.yaml)")
	_, _ = daemon.SdNotify(false, "STATUS=needs configuration: set tfsite.site= or write /etc/tfsite/config.yaml")
	t := time.NewTicker(ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return cfg, false
		case <-t.C:
		}
		a.touch()
		if a.reload == nil {
			continue
		}
		l, err := a.reload(ctx)
		if err != nil {
			a.setError(err)
			continue
		}
		if l.Config.NeedsConfiguration() {
			continue
		}
		if err := l.Config.Validate(); err != nil {
			a.setError(fmt.Errorf("configuration found but invalid: %s", strings.ReplaceAll(err.Error(), "\n", "; ")))
			continue
		}
		a.log.Info("configuration found", "site", l.Config.Site, "sources", l.Applied)
		a.mu.Lock()
		a.cfg, a.sources, a.phase, a.lastErr = l.Config, l.Applied, api.PhaseStarting, ""
		a.mu.Unlock()
		return l.Config, true
	}
}

// GossipPeersFile (under the state dir) keeps some alive peers' gossip
// addresses, so a restarted site rejoins them even without seeds (the
// fleet's first site) or with every seed down (membership.Config.PeersFile).
const GossipPeersFile = "gossip-peers.json"

// NetStateDir and OOBStateDir are where `tfsite net` keeps its records
// (netguard.DefaultStateDir and oob.DefaultStateDir under the default
// state dir), relative to the agent's state dir.
const (
	NetStateDir = config.NetStateDir
	OOBStateDir = "oob"
)

// startCore creates membership and the allocator.
func (a *Agent) startCore(cfg config.Config) error {
	keyring, err := cfg.GossipKeys()
	if err != nil {
		return fmt.Errorf("gossip key: %w", err)
	}
	if keyring == nil {
		// Validate allowed it: insecure is set.
		a.log.Error("INSECURE (insecure: true): no gossip key: gossip is not encrypted and anyone who reaches a voter can ask it for allocations; set gossip.keyFile (or tfsite.key=) on every site")
	}
	allocDir := filepath.Join(cfg.StateDir, AllocStateDir)
	siteKey, err := alloc.SiteKey(allocDir)
	if err != nil {
		return fmt.Errorf("site key: %w", err)
	}
	for _, problem := range cfg.KeyExposure() { // only with insecure: true, else Validate refused them
		a.log.Warn("lab mode (insecure: true): gossip key exposed", "problem", problem)
	}
	adv := a.advertiseAddr(cfg)
	mc := membership.Default()
	mc.Site, mc.Seeds, mc.Keys = cfg.Site, cfg.Gossip.Seeds, keyring
	mc.BindAddr, mc.BindPort = cfg.Gossip.BindAddress, cfg.Gossip.BindPort
	mc.AdvertiseAddr, mc.AdvertisePort = adv, cfg.Gossip.AdvertisePort
	if mc.AdvertisePort == 0 {
		// memberlist advertises AdvertisePort as is once an address is set.
		mc.AdvertisePort = cfg.Gossip.BindPort
	}
	mc.Profile, mc.RejoinInterval = cfg.Gossip.Profile, time.Duration(cfg.Gossip.RejoinInterval)
	mc.PeersFile = filepath.Join(cfg.StateDir, GossipPeersFile)
	mc.Meta = membership.Meta{Site: cfg.Site, Version: version.Version, VoterHash: alloc.VoterSetHash(cfg.Voters), Key: siteKey}
	if u, err := netip.ParseAddr(adv); err == nil {
		mc.Meta.Underlay = u
	}
	members, err := membership.New(mc, a.log.With("component", "membership"))
	if err != nil {
		return err
	}
	if adv == "" {
		adv = members.LocalAddr().Addr().String()
	}
	ac := alloc.Default()
	ac.Site, ac.Voters, ac.Keys, ac.Pools = cfg.Site, cfg.Voters, keyring, cfg.Pools
	ac.Insecure = cfg.Insecure
	ac.StateDir = allocDir
	ac.RetryInterval = time.Duration(cfg.Allocator.RetryInterval)
	m := time.Duration(max(cfg.Allocator.RaftMultiplier, 1))
	ac.HeartbeatTimeout, ac.ElectionTimeout, ac.LeaderLeaseTimeout = m*ac.HeartbeatTimeout, m*ac.ElectionTimeout, m*ac.LeaderLeaseTimeout
	bind, err := netip.ParseAddr(cfg.Gossip.BindAddress)
	if err != nil {
		members.Close()
		return fmt.Errorf("gossip.bindAddress: %w", err)
	}
	// Voters accept this site's requests only from the address it gossips
	// from.
	ac.SourceAddr = members.LocalAddr().Addr()
	ac.BindAddr = netip.AddrPortFrom(bind, uint16(cfg.Allocator.BindPort))
	if advAddr, err := netip.ParseAddr(adv); err == nil && (advAddr != bind || cfg.Allocator.AdvertisePort != 0) {
		port := cfg.Allocator.AdvertisePort
		if port == 0 {
			port = cfg.Allocator.BindPort
		}
		ac.Advertise = netip.AddrPortFrom(advAddr, uint16(port))
	}
	allocator, err := alloc.New(ac, members, a.log.With("component", "alloc"))
	if err != nil {
		members.Close()
		return err
	}
	a.mu.Lock()
	a.members, a.alloc = members, allocator
	a.mu.Unlock()
	a.log.Info("agent started", "site", cfg.Site, "gossip", members.LocalAddr(), "voter", ac.IsVoter(), "allocator", allocator.Endpoint(), "seeds", cfg.Gossip.Seeds)
	return nil
}

// reconcile is the level-triggered loop: on any change (or every few
// seconds) it re-reads the allocator and membership, publishes the
// allocation and endpoints into gossip metadata, and updates metrics and
// systemd.
func (a *Agent) reconcile(ctx context.Context, cfg config.Config, errc <-chan error, heldAtStart bool, start time.Time) error {
	a.mu.Lock()
	members, allocator := a.members, a.alloc
	a.mu.Unlock()
	// Only the allocator's state and our own addresses go into the metadata,
	// so membership churn does not wake this loop.
	allocEv := allocator.Subscribe()
	ready := false
	t := time.NewTicker(loopInterval)
	defer t.Stop()
	for {
		a.touch()
		meta := membership.Meta{Site: cfg.Site, Version: version.Version, VoterHash: allocator.VoterHash(), RPC: allocator.Endpoint(), Key: allocator.PublicKey(), Released: allocator.Released()}
		if u, err := netip.ParseAddr(a.advertiseAddr(cfg)); err == nil {
			meta.Underlay = u
		} else {
			meta.Underlay = members.LocalAddr().Addr()
		}
		if al, ok := allocator.Local(); ok {
			meta.Alloc = &al
			if !ready {
				ready = true
				if !heldAtStart {
					a.metrics.ObserveCommit(time.Since(start))
				}
				a.log.Info("allocation held", "asn", al.ASN, "pod", al.Pod, "service", al.Service, "fabric", al.Fabric, "after", time.Since(a.started).Round(time.Millisecond))
				_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+al.String())
			}
		}
		if err := members.UpdateMeta(meta); err != nil && !errors.Is(err, membership.ErrClosed) {
			a.setError(fmt.Errorf("publishing gossip metadata: %w", err))
		}
		// Rate limit: many sites converging at once wake every agent often.
		select {
		case <-ctx.Done():
		case <-time.After(minPass):
		}
		select {
		case <-ctx.Done():
			_ = members.Leave(time.Second)
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("a component stopped unexpectedly")
			}
			a.setError(err)
			return err
		case <-allocEv:
		case <-t.C:
		}
	}
}

// watchdog pings systemd's watchdog while the loops are alive.
func (a *Agent) watchdog(ctx context.Context) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A loop stuck for longer than the watchdog interval stops the pings,
		// so systemd restarts the agent.
		if time.Since(time.Unix(0, a.lastLoop.Load())) < interval {
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}

func (a *Agent) touch() { a.lastLoop.Store(time.Now().UnixNano()) }

func (a *Agent) setPhase(p string) {
	a.mu.Lock()
	a.phase = p
	a.mu.Unlock()
}

func (a *Agent) setError(err error) {
	a.log.Warn("agent error", "err", err)
	a.mu.Lock()
	a.lastErr = err.Error()
	a.mu.Unlock()
}

// Close stops everything; safe to call twice. Run's goroutines end with
// its ctx; Close releases the sockets and stores.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.server.Close()
		if a.metricSrv != nil {
			a.metricSrv.Close()
		}
		a.mu.Lock()
		members, allocator := a.members, a.alloc
		a.phase = api.PhaseStopped
		a.mu.Unlock()
		if allocator != nil {
			allocator.Close()
		}
		if members != nil {
			members.Close()
		}
	})
	return nil
}
