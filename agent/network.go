package agent

// The host network: underlay discovery, the advertised address, and the
// network guard's part at start (reverting a change a crash left).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/underlay"
	"github.com/tfsite/tfsite/recovery/netguard"
	"github.com/tfsite/tfsite/recovery/oob"
)

// discoverUnderlay finds the underlay interface and gateway, retrying with
// backoff. With an advertise address configured the agent need not wait: after
// the first failure it goes on, and discovery keeps retrying in the background
// (on wg) until it succeeds or ctx ends, so status shows the gateway as soon as
// a DHCP server answers.
func (a *Agent) discoverUnderlay(ctx context.Context, cfg config.Config, wg *sync.WaitGroup) bool {
	if cfg.Underlay.Disabled {
		return true
	}
	a.setPhase(api.PhaseDiscovering)
	opts := underlay.Default()
	opts.Iface = cfg.Underlay.Interface
	opts.Timeout = time.Duration(cfg.Underlay.Timeout)
	opts.Skip = a.managementLinks(cfg)
	if a.tryDiscover(ctx, opts) {
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	if cfg.Gossip.AdvertiseAddress != "" {
		a.log.Warn("underlay discovery failed; continuing with the configured advertise address, retrying discovery in the background")
		wg.Go(func() { a.retryDiscover(ctx, opts) })
		return true
	}
	return a.retryDiscover(ctx, opts)
}

// recoverNetwork reverts a guarded network change whose guarding process
// died before confirming it (what `tfsite net recover` does), so discovery
// never starts on a half-applied network. A revert is logged and kept in
// status as the last error until something newer replaces it.
func (a *Agent) recoverNetwork(cfg config.Config) {
	gc := netguard.Default()
	gc.StateDir = filepath.Join(cfg.StateDir, NetStateDir)
	g, err := netguard.New(gc, a.log.With("component", "netguard"), a.netOpts...)
	if err != nil {
		a.setError(fmt.Errorf("network recovery: %w", err))
		return
	}
	defer g.Close()
	p, err := g.Recover()
	switch {
	case errors.Is(err, netguard.ErrNothingPending):
	case errors.Is(err, netguard.ErrBusy):
		a.log.Info("a guarded network change is in progress by another process; leaving it to that process", "dir", gc.StateDir)
	case err != nil:
		a.setError(fmt.Errorf("network recovery: %w; run `tfsite net show --state-dir %s`", err, gc.StateDir))
	default:
		a.setError(fmt.Errorf("network recovery: reverted change %s left pending by a process that died", p))
	}
}

// watchNetwork runs netguard's Watcher (on wg, until ctx ends): a guarded
// change whose guarding process died (kill -9, a crash, its unit stopped
// hard) is reverted once its deadline has passed, journalled as reverted by
// tfsite-agent and kept in status as the last error.
func (a *Agent) watchNetwork(ctx context.Context, cfg config.Config, wg *sync.WaitGroup) {
	gc := netguard.Default()
	gc.StateDir = filepath.Join(cfg.StateDir, NetStateDir)
	w, err := netguard.NewWatcher(netguard.WatchConfig{Guard: gc, Actor: "tfsite-agent", Report: a.setError},
		a.log.With("component", "netguard"), a.netOpts...)
	if err != nil {
		a.setError(fmt.Errorf("network watcher: %w", err))
		return
	}
	wg.Go(func() {
		defer w.Close()
		_ = w.Run(ctx)
	})
}

// managementLinks are the interfaces underlay discovery must not pick: the
// configured management interface and the one `tfsite net oob-up` reserved.
func (a *Agent) managementLinks(cfg config.Config) []string {
	var skip []string
	if cfg.ManagementInterface != "" {
		skip = append(skip, cfg.ManagementInterface)
	}
	dir := filepath.Join(cfg.StateDir, OOBStateDir)
	res, err := oob.Load(dir)
	if err != nil {
		a.setError(fmt.Errorf("reading the management reservation: %w", err))
		return skip
	}
	if res != nil {
		for _, l := range []string{res.Link, res.VRF} {
			if l != "" && !slices.Contains(skip, l) {
				skip = append(skip, l)
			}
		}
	}
	return skip
}

// retryDiscover retries discovery with backoff (1 s doubling to 30 s) until it
// succeeds (true) or ctx ends (false).
func (a *Agent) retryDiscover(ctx context.Context, opts underlay.Options) bool {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		if a.tryDiscover(ctx, opts) {
			return true
		}
	}
}

// tryDiscover runs one discovery; on success it records the result and clears
// a discovery error, on failure it records the error.
func (a *Agent) tryDiscover(ctx context.Context, opts underlay.Options) bool {
	a.touch()
	res, err := a.discover(ctx, opts, a.log.With("component", "underlay"))
	if err != nil {
		if ctx.Err() == nil {
			a.setError(fmt.Errorf("underlay discovery: %w", err))
		}
		return false
	}
	a.log.Info("underlay discovered", "interface", res.Interface, "address", res.Address, "gateway", res.Gateway, "source", res.GatewaySource)
	a.mu.Lock()
	a.under = res
	if strings.HasPrefix(a.lastErr, "underlay discovery: ") {
		a.lastErr = ""
	}
	a.mu.Unlock()
	return true
}

// advertiseAddr picks the address peers reach this site at: configured,
// else the discovered underlay address, else a specific bind address, else
// "" (memberlist then picks a private address of the host).
func (a *Agent) advertiseAddr(cfg config.Config) string {
	if cfg.Gossip.AdvertiseAddress != "" {
		return cfg.Gossip.AdvertiseAddress
	}
	a.mu.Lock()
	under := a.under
	a.mu.Unlock()
	if under != nil {
		if p, err := netip.ParsePrefix(under.Address); err == nil {
			return p.Addr().String()
		}
	}
	if b, err := netip.ParseAddr(cfg.Gossip.BindAddress); err == nil && !b.IsUnspecified() {
		return b.String()
	}
	return ""
}
