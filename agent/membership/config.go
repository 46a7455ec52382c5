package membership

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tfsite/tfsite/agent/sitename"
	"github.com/tfsite/tfsite/internal/hostport"
)

// DefaultPort is memberlist's usual gossip port (TCP and UDP).
const DefaultPort = 7946

// Config configures Membership.
type Config struct {
	// Site is the local site name; it is the memberlist node name, so two
	// nodes claiming one site are detected as a name conflict.
	Site string
	// BindAddr/BindPort: where gossip listens (TCP+UDP). Port 0 picks a free
	// port (tests).
	BindAddr string
	BindPort int
	// AdvertiseAddr/AdvertisePort: what peers dial; default the bind values
	// (the bind address must then be specific).
	AdvertiseAddr string
	AdvertisePort int
	// Seeds are "host:port" (or "host", port 7946) of any sites to join
	// through; one reachable seed is enough.
	Seeds []string
	// Keys is the memberlist keyring, primary first (16, 24 or 32 bytes each,
	// AES). Empty means unencrypted gossip (tests and labs only). Nodes
	// without a matching key are refused.
	Keys [][]byte
	// RejoinInterval: how often seeds and last-known peers that are not
	// alive members are re-joined, so a healed partition merges again
	// (memberlist alone does not, memberlist #222). Default 15s.
	RejoinInterval time.Duration
	// Profile: "lan" (default), "wan" or "local" (fast timers, tests).
	Profile string
	// PeersFile keeps the addresses of up to 16 alive peers (written
	// atomically when they change; never emptied by a site that finds itself
	// alone), and a restarted site joins them as well as its seeds. Peers
	// do not re-join a site that left on purpose, so without it the fleet's
	// first site, which has no seeds, would stay alone after a restart.
	// Empty keeps nothing.
	PeersFile string
	// Meta is the initial metadata (Site is forced to the config's).
	Meta Meta

	// wrapTransport, set only by tests, wraps the UDP/TCP transport (to
	// cut links and simulate partitions at the transport boundary).
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	// tune, set only by tests, adjusts memberlist timers.
	tune func(*memberlist.Config)
	// suspectHold, set only by tests, replaces how long a failed probe
	// keeps a site suspect without a later ack or event (10 probe intervals).
	suspectHold time.Duration
	// connectTimeout, set only by tests, replaces DefaultConnectTimeout.
	connectTimeout time.Duration
	// metaTimeout and retryFirst, set only by tests, replace
	// DefaultMetaTimeout and DefaultRetryFirst.
	metaTimeout time.Duration
	retryFirst  time.Duration
}

// Default returns a Config with defaults; Site and Seeds still have to be set.
func Default() Config {
	return Config{BindAddr: "0.0.0.0", BindPort: DefaultPort, RejoinInterval: 15 * time.Second, Profile: "lan"}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := sitename.Validate(c.Site); err != nil {
		errs = append(errs, fmt.Errorf("site: %w", err))
	}
	if _, err := netip.ParseAddr(c.BindAddr); err != nil {
		add("gossip bind address %q: not an IP address (e.g. 0.0.0.0)", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		add("gossip ports %d/%d: out of range 0..65535", c.BindPort, c.AdvertisePort)
	}
	if c.AdvertiseAddr != "" {
		if a, err := netip.ParseAddr(c.AdvertiseAddr); err != nil || a.IsUnspecified() {
			add("gossip advertise address %q: need a specific IP address", c.AdvertiseAddr)
		}
	}
	for i, s := range c.Seeds {
		if _, err := hostport.Normalize(s, DefaultPort); err != nil {
			add("seeds[%d]: %v", i, err)
		}
	}
	for i, k := range c.Keys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			add("keys[%d]: %d bytes: a gossip key must be 16, 24 or 32 bytes (generate with: head -c32 /dev/urandom | base64)", i, l)
		}
	}
	if c.RejoinInterval <= 0 {
		add("rejoin interval %s: must be positive (default 15s)", c.RejoinInterval)
	}
	switch c.Profile {
	case "", "lan", "wan", "local":
	default:
		add("gossip profile %q: use lan, wan or local", c.Profile)
	}
	return errors.Join(errs...)
}
