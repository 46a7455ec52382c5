// Package api is the agent's local API: a unix-socket HTTP/JSON server, the
// typed client the CLI uses, and the Prometheus metrics.
//
//	GET  /v1/status               Status
//	GET  /v1/peers                []Peer
//	GET  /v1/bgp-peers            []BGPPeer
//	POST /v1/sites/{name}/release 204, or an Error
//	GET  /v1/backup               a backup file of the allocation table (voters)
package api

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Agent phases reported in Status.Phase, in boot order. Once membership runs
// the phase is the allocator's (waiting-voters, requesting, allocated,
// no-quorum, conflict, exhausted, voter-mismatch; see agent/alloc).
const (
	PhaseNeedsConfiguration = "needs-configuration"
	PhaseDiscovering        = "discovering"
	PhaseStarting           = "starting"
	PhaseAllocated          = "allocated"
	// PhaseConflict: this site's recorded allocation (or name) is held by
	// another site now; the values in Status.Allocation must not be used.
	PhaseConflict = "conflict"
	PhaseStopped  = "stopped"
)

// Peer states in Peer.State.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Status is the answer of GET /v1/status.
type Status struct {
	Site    string `json:"site"`
	Phase   string `json:"phase"`
	Version string `json:"version,omitempty"`
	// Allocation is nil until the site holds a committed allocation.
	Allocation *Allocation `json:"allocation,omitempty"`
	// Underlay is what discovery found; nil before discovery (or disabled).
	Underlay *Underlay `json:"underlay,omitempty"`
	// Gossip is this site's gossip endpoint (advertised address:port).
	Gossip string `json:"gossip,omitempty"`
	// Voter reports whether this site is one of the voters.
	Voter  bool     `json:"voter"`
	Voters []string `json:"voters,omitempty"`
	// RaftState is leader/follower/candidate on voters; Leader names the
	// raft leader's site when known.
	RaftState string `json:"raftState,omitempty"`
	Leader    string `json:"leader,omitempty"`
	// GossipHealth is memberlist's awareness score: 0 is healthy, higher
	// means this node is slow to answer probes.
	GossipHealth int    `json:"gossipHealth"`
	Peers        []Peer `json:"peers"`
	// LastError is the most recent error in words; "" when healthy.
	LastError string `json:"lastError,omitempty"`
	// Problems lists what an operator should look at.
	Problems []string `json:"problems,omitempty"`
	// Insecure is true when the agent runs without a gossip key
	// (insecure: true): gossip is unencrypted and its allocator accepts
	// anyone. Problems says so too.
	Insecure bool `json:"insecure,omitempty"`
	// ConfigSources lists where the configuration came from, in order applied.
	ConfigSources []string `json:"configSources,omitempty"`
	// BringUp is what `tfsite bringup` (its own process) last reported
	// (kubeadm, TF, vrouter, peering); nil when bring-up is off.
	BringUp *BringUp `json:"bringUp,omitempty"`
}

// BringUpNotStarted is BringUp.Phase while bring-up is enabled but the
// bring-up process has not reported yet.
const BringUpNotStarted = "not-started"

// BringUp reports the site's bring-up (docs/bringup.md). The bring-up
// process writes it to BringUpStatusFile under the state dir; the agent
// serves it in Status.

type BringUp struct {
	// Phase: waiting, preflight-failed, kubeadm, applying, vrouter-guard,
	// vrouter-reverted, peering, ready or failed.
	Phase string `json:"phase"`
	Error string `json:"error,omitempty"`
	// Waiting says what a waiting pass waits for (phase waiting).
	Waiting string `json:"waiting,omitempty"`
	// Steps is the last outcome of each step, in order.
	Steps []BringUpStep `json:"steps,omitempty"`
	// Vrouter is how the last guarded vrouter start ended.
	Vrouter *VrouterOutcome `json:"vrouter,omitempty"`
	// PeersConfigured counts the other sites configured as BGP peers in TF.
	PeersConfigured int `json:"peersConfigured"`
	// Updated is when the bring-up process wrote this report.
	Updated time.Time `json:"updated,omitzero"`
	// Profile is "lab" when preflight runs with the lab profile's lowered
	// minimums (never on a production site); empty otherwise.
	Profile string `json:"profile,omitempty"`
	// Running is the long step under way (images, kubeadm), if any.
	Running *BringUpRunning `json:"running,omitempty"`
}

// BringUpRunning names the step under way and when it began.
type BringUpRunning struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// Doing says what is under way and for how long, as of now: "kubeadm running
// for 2m10s"; empty when nothing is.
func (b *BringUp) Doing(now time.Time) string {
	if b.Running == nil {
		return ""
	}
	return fmt.Sprintf("%s running for %s", b.Running.Name, now.Sub(b.Running.Since).Round(time.Second))
}

// BringUpStep is one step's last outcome.
type BringUpStep struct {
	Name   string    `json:"name"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// VrouterOutcome is how a guarded vrouter start ended.
type VrouterOutcome struct {
	Confirmed bool      `json:"confirmed"`
	Reason    string    `json:"reason,omitempty"`
	Ended     time.Time `json:"ended"`
}

// Allocation is a site's committed ASN and prefixes.
type Allocation struct {
	ASN     uint32       `json:"asn"`
	Pod     netip.Prefix `json:"pod"`
	Service netip.Prefix `json:"service"`
	Fabric  netip.Prefix `json:"fabric"`
}

// Underlay is the discovered underlay interface and gateway.
type Underlay struct {
	Interface     string `json:"interface"`
	Address       string `json:"address,omitempty"`
	Gateway       string `json:"gateway,omitempty"`
	GatewaySource string `json:"gatewaySource,omitempty"`
	// Disabled is set when discovery is configured off.
	Disabled bool `json:"disabled,omitempty"`
}

// Peer is another site as gossip sees it.
type Peer struct {
	Site    string `json:"site"`
	State   string `json:"state"`
	Address string `json:"address,omitempty"`
	// Underlay is the peer's underlay address from its gossip metadata.
	Underlay   string      `json:"underlay,omitempty"`
	Version    string      `json:"version,omitempty"`
	Voter      bool        `json:"voter,omitempty"`
	Allocation *Allocation `json:"allocation,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Sentinel errors: the server maps them to HTTP status codes and the client
// maps the codes back, so callers branch with errors.Is on either side.
var (
	// ErrNotFound: no such site (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request is refused in the current state (409), e.g.
	// releasing a site that is still alive.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the agent cannot do it now (503), e.g. no quorum or
	// still waiting for configuration.
	ErrUnavailable = errors.New("unavailable")
	// ErrAgentDown: nothing answers on the socket.
	ErrAgentDown = errors.New("agent not reachable")
)
