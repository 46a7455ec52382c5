package alloc

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tfsite/tfsite/agent/pools"
	"github.com/tfsite/tfsite/agent/sitename"
)

// DefaultPort is the allocator endpoint port voters listen on (raft and RPC
// share it); gossip uses 7946.
const DefaultPort = 7947

// Config configures an Allocator.
type Config struct {
	// Site is this site's name (a DNS label).
	Site string
	// Voters is the fixed set of voter site names. Every site must be
	// configured with the same set (compared through VoterSetHash). One voter
	// is enough for a two-site lab; use 3 or 5 for fault tolerance.
	Voters []string
	// StateDir holds the local allocation record, the node identity and, on
	// voters, the raft log, stable store and snapshots.
	StateDir string
	// BindAddr is where a voter listens for raft and allocation RPC
	// (port 0 picks a free port, for tests). Ignored on non-voters.
	BindAddr netip.AddrPort
	// Advertise is the endpoint peers dial; default BindAddr (which must then
	// be a specific address, not 0.0.0.0).
	Advertise netip.AddrPort
	// Keys are the fleet keys (use the gossip keyring, primary first): the
	// allocator channel (Noise XXpsk3) uses the first and accepts any.
	// Empty is refused unless Insecure is set.
	Keys [][]byte
	// Insecure allows running without Keys (labs only): the channel is
	// still encrypted and bound to site keys, but anyone who reaches a
	// voter's endpoint may ask for allocations and read the table.
	Insecure bool
	// SourceAddr is the address this site's connections to voters leave
	// from: the address it gossips from, which voters check. Invalid or
	// unspecified: the kernel picks one.
	SourceAddr netip.Addr
	// Pools are the ranges allocations are carved from (voters use them).
	Pools pools.Pools
	// RetryInterval is how often a site without an allocation retries
	// (jittered); default 2s.
	RetryInterval time.Duration
	// RequestTimeout bounds one allocation request; default 10s.
	RequestTimeout time.Duration
	// Raft timing; defaults suit a LAN/WAN of small appliances.
	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms
}

// Default returns a Config with every default filled in; Site, Voters and
// StateDir still have to be set.
func Default() Config {
	return Config{
		BindAddr:           netip.AddrPortFrom(netip.IPv4Unspecified(), DefaultPort),
		Pools:              pools.DefaultPools(),
		RetryInterval:      2 * time.Second,
		RequestTimeout:     10 * time.Second,
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
	}
}

// IsVoter reports whether this site is one of the voters.
func (c Config) IsVoter() bool { return slices.Contains(c.Voters, c.Site) }

// VoterSetHash is a short hash of the sorted voter set. Sites compare it
// through gossip to detect a configuration mismatch.
func (c Config) VoterSetHash() string { return VoterSetHash(c.Voters) }

// VoterSetHash hashes a voter set independent of order (16 hex digits).
func VoterSetHash(voters []string) string {
	v := slices.Clone(voters)
	slices.Sort(v)
	v = slices.Compact(v)
	sum := sha256.Sum256([]byte(strings.Join(v, "\n")))
	return hex.EncodeToString(sum[:8])
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := sitename.Validate(c.Site); err != nil {
		errs = append(errs, fmt.Errorf("site: %w", err))
	}
	if len(c.Voters) == 0 {
		add("voters: empty: list the voter site names (one is enough for a lab, 3 or 5 for fault tolerance)")
	}
	seen := map[string]bool{}
	for i, v := range c.Voters {
		if err := sitename.Validate(v); err != nil {
			errs = append(errs, fmt.Errorf("voters[%d]: %w", i, err))
		}
		if seen[v] {
			add("voters[%d]: %q listed twice", i, v)
		}
		seen[v] = true
	}
	if c.StateDir == "" {
		add("state dir: empty: set a persistent directory such as /var/lib/tfsite")
	}
	if c.IsVoter() {
		if !c.BindAddr.IsValid() {
			add("bind address: missing: a voter must listen for raft and RPC (e.g. 0.0.0.0:%d)", DefaultPort)
		}
		adv := c.Advertise
		if !adv.IsValid() {
			adv = c.BindAddr
		}
		if adv.IsValid() && adv.Addr().IsUnspecified() {
			add("advertise address: %s is unspecified: set the address peers reach this voter on", adv)
		}
	}
	for i, k := range c.Keys {
		if len(k) < 16 {
			add("keys[%d]: %d bytes, need at least 16", i, len(k))
		}
	}
	if len(c.Keys) == 0 && !c.Insecure {
		add("keys: none: the allocator endpoint would accept anyone; set the fleet (gossip) key, or Insecure for a lab")
	}
	if c.RetryInterval <= 0 || c.RequestTimeout <= 0 {
		add("retry interval and request timeout must be positive (got %s, %s)", c.RetryInterval, c.RequestTimeout)
	}
	if c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0 || c.LeaderLeaseTimeout <= 0 || c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		add("raft timeouts: heartbeat %s, election %s, lease %s: all must be positive and lease <= heartbeat", c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout)
	}
	if err := c.Pools.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
