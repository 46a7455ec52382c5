package alloc

// The allocator's raft node: opening and closing it, its transport's view of
// the voters, leader observation and raft's log routed to slog.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// openRaft starts the endpoint listener and the raft member.
func (a *Allocator) openRaft() error {
	ln, err := net.Listen("tcp", a.cfg.BindAddr.String())
	if err != nil {
		return fmt.Errorf("allocator endpoint: listening on %s: %w", a.cfg.BindAddr, err)
	}
	bound := ln.Addr().(*net.TCPAddr).AddrPort()
	a.adv = a.cfg.Advertise
	if !a.adv.IsValid() {
		a.adv = netip.AddrPortFrom(a.cfg.BindAddr.Addr(), bound.Port())
	} else if a.adv.Port() == 0 {
		a.adv = netip.AddrPortFrom(a.adv.Addr(), bound.Port())
	}
	a.ep = newEndpoint(ln, a.kr, a.self, a.log)
	a.ep.handle, a.ep.admitRaft, a.ep.voterAt, a.ep.dial = a.handle, a.admitRaft, a.voterAt, a.dial
	dir := filepath.Join(a.cfg.StateDir, raftDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating raft dir: %w", err)
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: &hclogWriter{log: a.log.With("component", "raft")}, DisableTime: true})
	a.store, err = openRaftStore(filepath.Join(dir, raftStoreFile))
	if err != nil {
		return a.storeError(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		return fmt.Errorf("opening raft snapshots: %w", err)
	}
	a.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: addrProvider{a}, Stream: &streamLayer{e: a.ep},
		MaxPool: 3, Timeout: 10 * time.Second, Logger: hl,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(a.cfg.Site)
	rc.HeartbeatTimeout = a.cfg.HeartbeatTimeout
	rc.ElectionTimeout = a.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = a.cfg.LeaderLeaseTimeout
	if len(a.cfg.Voters) == 1 {
		// A lone voter is its own quorum: there is nobody whose heartbeat
		// it could miss and nobody to outvote it, so it need not wait a
		// heartbeat timeout (1-2 s) before electing itself at every start
		// (the appliance's boot to ready, a two-site lab). Raft's safety
		// never depends on timeouts.
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = loneVoterTimeout, loneVoterTimeout, loneVoterTimeout
	}
	rc.Logger = hl
	rc.SnapshotThreshold = 1024
	a.fsm = newFSM()
	start, err := a.planRaftStart(snaps)
	if err != nil {
		return err
	}
	a.raft, err = raft.NewRaft(rc, a.fsm, a.store, a.store, snaps, a.trans)
	if err != nil {
		// Only the state on disk can fail it: the stores, or snapshots
		// that do not load.
		return a.storeError(corruptStore(dir, fmt.Errorf("raft cannot start from it: %w", err)))
	}
	switch start {
	case startBootstrap:
		// Every voter bootstraps the same fixed configuration; addresses are
		// resolved through gossip at dial time (addrProvider), so no voter
		// has to wait for the others to bootstrap.
		if err := a.raft.BootstrapCluster(configuration(a.cfg.Voters)).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrapping raft: %w", err)
		}
	case startRejoin:
		// No configuration until the leader sends one (see raftstate.go).
		a.rejoining.Store(true)
	default:
		if err := a.checkRaftVoters(); err != nil {
			return err
		}
	}
	if err := writeMarker(a.cfg.StateDir); err != nil {
		return err
	}
	a.reqs = make(chan *pending, 1024)
	return nil
}

// checkRaftVoters compares the committed raft configuration with the
// configured voter set.
func (a *Allocator) checkRaftVoters() error {
	f := a.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("reading raft configuration: %w", err)
	}
	var have []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			have = append(have, string(s.ID))
		}
	}
	if VoterSetHash(have) != a.hash {
		sort.Strings(have)
		return fmt.Errorf("%w: this voter's raft state was bootstrapped with voters [%s] but the config lists [%s]: changing the voter set of a running fleet is not supported; restore the old list", ErrVoterMismatch, strings.Join(have, " "), strings.Join(a.cfg.Voters, " "))
	}
	return nil
}

// addrProvider resolves raft server IDs (site names) to endpoints through gossip.
type addrProvider struct{ a *Allocator }

func (p addrProvider) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if ep, ok := p.a.voterEndpoint(string(id)); ok {
		return raft.ServerAddress(ep.String()), nil
	}
	return "", fmt.Errorf("voter %s not seen in gossip yet", id)
}

func (a *Allocator) voterEndpoint(site string) (netip.AddrPort, bool) {
	if site == a.cfg.Site && a.voter {
		return a.adv, true
	}
	if l, ok := a.members.(peerLookup); ok {
		p, ok := l.Peer(site)
		return p.Endpoint, ok && p.Endpoint.IsValid()
	}
	for _, p := range a.members.Peers() {
		if p.Site == site && p.Endpoint.IsValid() {
			return p.Endpoint, true
		}
	}
	return netip.AddrPort{}, false
}

// observeElections returns a channel that receives when this voter learns
// of an elected raft leader, and the func that stops observing.
func (a *Allocator) observeElections() (<-chan raft.Observation, func()) {
	ch := make(chan raft.Observation, 1)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		l, ok := o.Data.(raft.LeaderObservation)
		return ok && l.LeaderID != ""
	})
	a.raft.RegisterObserver(obs)
	return ch, func() { a.raft.DeregisterObserver(obs) }
}

// awaitLeader returns once this voter knows a Raft leader, or when ctx is
// done (the caller's request then reports what it meets).
func (a *Allocator) awaitLeader(ctx context.Context) {
	elected, stop := a.observeElections()
	defer stop()
	if _, id := a.raft.LeaderWithID(); id != "" {
		return // checked after registering, so no election is missed
	}
	select {
	case <-ctx.Done():
	case <-elected:
	}
}

func (a *Allocator) closeRaft() error {
	var errs []error
	if a.raft != nil {
		errs = append(errs, a.raft.Shutdown().Error())
	}
	if a.trans != nil {
		errs = append(errs, a.trans.Close())
	}
	if a.ep != nil {
		a.ep.close()
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	return errors.Join(errs...)
}

// hclogWriter maps hclog lines ("[WARN]  raft: ...") onto slog levels.
type hclogWriter struct{ log *slog.Logger }

func (w *hclogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	lvl := slog.LevelDebug // raft's INFO chatter is debug for us
	for tag, l := range map[string]slog.Level{"[WARN]": slog.LevelWarn, "[ERROR]": slog.LevelError} {
		if i := strings.Index(line, tag); i >= 0 {
			lvl = l
			line = strings.TrimSpace(line[i+len(tag):])
		}
	}
	if i := strings.Index(line, "] "); i >= 0 && i < 8 {
		line = strings.TrimSpace(line[i+2:])
	}
	w.log.Log(context.Background(), lvl, line)
	return len(p), nil
}
