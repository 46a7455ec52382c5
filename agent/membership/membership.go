// Package membership is tfsite's gossip layer: a hashicorp/memberlist agent
// named after the site, carrying Meta (underlay, BGP and allocator endpoints,
// allocation, version) and re-joining seeds and last-known peers so that a
// healed partition merges again (memberlist #222).
//
// Gossip is eventually consistent: it tells who is around, never who owns
// what. Uniqueness of allocations is the alloc package's job.
package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tfsite/tfsite/internal/notify"
)

// State of a member as seen locally.
type State string

// Member states.
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// Member is one site as seen through gossip.
type Member struct {
	Site  string         `json:"site"`
	Addr  netip.AddrPort `json:"addr"`
	State State          `json:"state"`
	Meta  Meta           `json:"meta"`
	// MetaError is set when the peer's metadata could not be decoded.
	MetaError string `json:"meta_error,omitempty"`
	Local     bool   `json:"local,omitempty"`
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("membership closed")

// Membership is the local gossip agent.
type Membership struct {
	cfg Config
	log *slog.Logger
	ml  *memberlist.Memberlist
	// local is this node's gossip address.
	local netip.AddrPort

	// mu guards the fields below. memberlist calls the delegate, which
	// takes mu, with its own node lock held: never call into memberlist
	// while holding mu.
	mu        sync.Mutex
	meta      []byte                      // the local metadata (what NodeMeta answers)
	published []byte                      // the last meta that gossip carried out (UpdateMeta)
	retryAt   time.Time                   // when UpdateMeta may re-broadcast an unpublished meta
	retryWait time.Duration               // the current backoff between those re-broadcasts
	sent      int                         // broadcasts of meta that finished (UpdateMeta)
	saved     []string                    // peer addresses in PeersFile (Run's goroutine only, after New)
	known     map[string]*memberlist.Node // every node ever seen (copies), by name
	decoded   map[string]decodedMeta      // known[name].Meta, decoded once when it changes
	conflicts map[string]string           // site → description of the conflict
	suspect   map[string]time.Time        // site → when our probe of it failed
	// suspectHold is how long a failed probe keeps a site suspect unless an
	// ack or a membership event clears it first.
	suspectHold time.Duration
	changes     notify.Hub // wakes Subscribe()rs
	closed      bool

	closeOnce sync.Once
	done      chan struct{}
}

// New validates cfg and starts the memberlist agent (it binds its ports
// now, so LocalAddr is known), without joining anyone; Run joins.
func New(cfg Config, log *slog.Logger) (*Membership, error) {
	if cfg.RejoinInterval == 0 {
		cfg.RejoinInterval = Default().RejoinInterval
	}
	if cfg.metaTimeout == 0 {
		cfg.metaTimeout = DefaultMetaTimeout
	}
	if cfg.retryFirst == 0 {
		cfg.retryFirst = DefaultRetryFirst
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("membership config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Meta.Site = cfg.Site
	meta, err := EncodeMeta(cfg.Meta)
	if err != nil {
		return nil, err
	}
	m := &Membership{
		cfg: cfg, log: log, meta: meta,
		known:     map[string]*memberlist.Node{},
		decoded:   map[string]decodedMeta{},
		conflicts: map[string]string{},
		suspect:   map[string]time.Time{},
		done:      make(chan struct{}),
	}
	if cfg.PeersFile != "" {
		saved, err := readPeers(cfg.PeersFile)
		if err != nil {
			log.Warn("saved gossip peers ignored; joining through the seeds only", "err", err)
		}
		m.saved = saved
	}
	var mc *memberlist.Config
	switch cfg.Profile {
	case "wan":
		mc = memberlist.DefaultWANConfig()
		// Each gossip message is resent RetransmitMult x log10(N) times by
		// every node; with hundreds of sites converging at once that
		// dominates CPU. Push-pull anti-entropy repairs what gossip misses.
		mc.RetransmitMult = 2
	case "local":
		mc = memberlist.DefaultLocalConfig()
	default:
		mc = memberlist.DefaultLANConfig()
	}
	// No LZW compression of gossip: packets are small (metadata is at most
	// 512 bytes) and every compressed packet allocates fresh LZW tables on
	// both ends. With hundreds of sites converging at once, compressing
	// and decompressing plus the garbage collection it caused took about
	// a third of all agents' CPU (perf, bench-alloc at 500 sites). Peers
	// that do compress are still understood.
	mc.EnableCompression = false
	mc.Name = cfg.Site
	mc.Label = "tfsite"
	mc.BindAddr, mc.BindPort = cfg.BindAddr, cfg.BindPort
	mc.AdvertiseAddr, mc.AdvertisePort = cfg.AdvertiseAddr, cfg.AdvertisePort
	if mc.AdvertisePort == 0 && mc.BindPort != 0 {
		mc.AdvertisePort = mc.BindPort
	}
	if mc.AdvertiseAddr == "" {
		if a, err := netip.ParseAddr(cfg.BindAddr); err == nil && !a.IsUnspecified() {
			mc.AdvertiseAddr = cfg.BindAddr
		}
	}
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	// A site that restarts on a new address (DHCP) may reclaim its name
	// once the old incarnation has been dead this long. (Two live nodes
	// with one name are still a conflict; the allocator's node identity
	// keeps a reclaimed name from taking over another node's allocation.)
	mc.DeadNodeReclaimTime = 5 * mc.ProbeInterval
	if cfg.tune != nil {
		cfg.tune(mc)
	}
	d := &delegate{m: m}
	mc.Delegate, mc.Events, mc.Conflict, mc.Ping = d, d, d, d
	m.suspectHold = cfg.suspectHold
	if m.suspectHold == 0 {
		m.suspectHold = 10 * mc.ProbeInterval
	}
	mc.LogOutput = &logWriter{log: log.With("component", "memberlist"), onLine: m.watchLog}
	limit := cfg.connectTimeout
	if limit == 0 {
		limit = DefaultConnectTimeout
	}
	nt, tr, err := newTransport(cfg.BindAddr, cfg.BindPort, limit, stdlog.New(mc.LogOutput, "", 0))
	if err != nil {
		return nil, err
	}
	if cfg.wrapTransport != nil {
		tr = cfg.wrapTransport(tr)
	}
	mc.Transport = tr
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
	}
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = mc.BindPort
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("starting gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	m.ml = ml
	// Read once: memberlist hands out pointers to nodes it keeps mutating,
	// so this package only reads node names from it and keeps its own
	// copies (made inside the event callbacks) for everything else.
	ln := ml.LocalNode()
	a, _ := netip.AddrFromSlice(ln.Addr)
	m.local = netip.AddrPortFrom(a.Unmap(), ln.Port)
	return m, nil
}

// LocalAddr is the gossip address peers use for this site (the real port
// when BindPort was 0).
func (m *Membership) LocalAddr() netip.AddrPort { return m.local }

// Run joins through the seeds (retrying until one answers) and then keeps
// re-joining seeds and last-known peers that are not alive members, until
// ctx is done. It returns nil then.
func (m *Membership) Run(ctx context.Context) error {
	interval := m.cfg.RejoinInterval
	first := true
	for {
		joined := m.rejoin(ctx, first)
		m.savePeers()
		wait := interval
		if first && !joined && len(m.joinAddrs()) > 0 {
			wait = min(interval, time.Second) // keep knocking fast until the first join
		} else {
			first = false
		}
		wait = jitter(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-m.done:
			return nil
		case <-time.After(wait):
		}
	}
}

// UpdateMeta replaces the local metadata (Site is forced) and gossips it.
//
// memberlist can silently drop the broadcast of an update (hashicorp/memberlist
// #263: when an update replaces the only queued message its queue reuses
// message ids, and of two queued messages with equal id, length and transmit
// count only one is kept; sites publishing equal-sized metadata at once hit
// it). The local node then carries the new metadata, but peers would hear of
// it only at the next push/pull, 15-60 s away by profile (longer in fleets
// of over 32 sites). So an update whose broadcast does not complete in time
// stays unpublished, and a later call with the same metadata broadcasts it
// again (the agent calls at least every 5 s) once a backoff has passed: 1 s,
// doubling up to a minute, jittered. A fresh broadcast replaces the lost one.
// Repairing by push/pull instead would move the whole fleet's state: tried,
// it slowed 500 sites starting at once from 10-20 s to 25-53 s.
//
// A broadcast that completes can still miss a peer in a small fleet (see
// confirmBelow), so there an update is published only after a second,
// confirming broadcast, due like a first retry.
func (m *Membership) UpdateMeta(meta Meta) error {
	meta.Site = m.cfg.Site
	b, err := EncodeMeta(meta)
	if err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if bytes.Equal(b, m.published) || (bytes.Equal(b, m.meta) && time.Now().Before(m.retryAt)) {
		m.mu.Unlock()
		return nil // published, or a retry of it is not due yet
	}
	if !bytes.Equal(b, m.meta) {
		m.retryWait, m.sent = 0, 0 // new content: gossip it now
	}
	m.meta = b
	m.mu.Unlock()
	err = m.gossipMeta()
	small := m.ml.NumMembers() < confirmBelow // memberlist's lock: not under mu
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		// Retry with jittered backoff: during a fleet's start-up burst
		// broadcasts are slow rather than lost, and re-broadcasting on
		// every pass would add to the load.
		m.retryWait = min(max(2*m.retryWait, m.cfg.retryFirst), retryMax)
		m.retryAt = time.Now().Add(jitter(m.retryWait))
		return err
	}
	if !bytes.Equal(b, m.meta) {
		return nil // replaced meanwhile; that call publishes the newer meta
	}
	m.sent++
	if m.sent < 2 && small {
		m.retryAt = time.Now().Add(jitter(m.cfg.retryFirst))
		return nil
	}
	m.published = b
	return nil
}

// confirmBelow is the fleet size under which UpdateMeta confirms every
// update with a second broadcast. memberlist stops sending a broadcast after
// RetransmitMult x ceil(log10(N+1)) transmissions, just RetransmitMult under
// 10 nodes, and counts every packet the broadcast rides on, pings and acks
// included: with few peers and few relays all of them can go to the same
// peers. Three sites with a multiplier of 2 left a peer without an update,
// until push/pull, in 6 of 150 rounds (docs/benchmarks.md); larger fleets
// have many relays.
const confirmBelow = 10

// jitter returns a duration drawn uniformly from [d/2, 3d/2).
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d) }

// DefaultRetryFirst and retryMax bound the backoff (jittered 0.5x..1.5x)
// between re-broadcasts of a metadata update whose broadcast did not
// complete.
const (
	DefaultRetryFirst = time.Second
	retryMax          = time.Minute
)

// gossipMeta broadcasts the local metadata (NodeMeta) and waits for
// memberlist to finish the broadcast.
func (m *Membership) gossipMeta() error {
	if err := m.ml.UpdateNode(m.cfg.metaTimeout); err != nil {
		return fmt.Errorf("gossiping metadata: %w (broadcast again shortly)", err)
	}
	return nil
}

// DefaultMetaTimeout bounds how long UpdateMeta waits for memberlist to
// finish gossiping a metadata update.
const DefaultMetaTimeout = 2 * time.Second

// Meta returns the local metadata as last set.
func (m *Membership) Meta() Meta {
	m.mu.Lock()
	defer m.mu.Unlock()
	meta, _ := DecodeMeta(m.meta)
	return meta
}

// Subscribe returns a channel that receives (coalesced) on every membership
// change: join, leave, metadata update, conflict. Closed on Close.
func (m *Membership) Subscribe() <-chan struct{} { return m.changes.Subscribe() }

func (m *Membership) notify() { m.changes.Notify() }

// HealthScore is memberlist's awareness score (0 is healthy).
func (m *Membership) HealthScore() int { return m.ml.GetHealthScore() }

// Leave announces a graceful departure: it gossips a "leaving" mark in the
// metadata (so peers show state left rather than dead), then leaves.
func (m *Membership) Leave(timeout time.Duration) error {
	meta := m.Meta()
	meta.Leaving = true
	if b, err := EncodeMeta(meta); err == nil {
		m.mu.Lock()
		m.meta = b
		m.mu.Unlock()
		if err := m.ml.UpdateNode(timeout / 2); err != nil {
			m.log.Warn("gossiping leave mark", "err", err)
		}
	}
	return m.ml.Leave(timeout)
}

// Close stops gossip. Safe to call twice.
func (m *Membership) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ml.Shutdown()
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.changes.Close()
	})
	return err
}
