package netguard

import (
	"context"

	"github.com/tfsite/tfsite/internal/probe"
)

// Kernel is netguard's boundary to the host's network stack.
type Kernel interface {
	// Snapshot reads links, addresses, routes (all tables but local) and rules.
	Snapshot() (*State, error)
	// Converge changes the host to s: it deletes removeLinks (unless s has
	// them), creates the bridges and veth pairs s has and the host lacks, then
	// sets masters, MTUs, up/down, addresses, routes and rules as s has them.
	// Plans are applied this way (Apply), and reverts restore a snapshot.
	Converge(s *State, removeLinks []string) error
}

// Prober answers whether something is reachable right now.
type Prober interface {
	// ARP asks gw for its hardware address on the link that routes to it.
	ARP(ctx context.Context, gw probe.Target) error
	// Reach sends an ICMP echo (icmp) or opens a TCP connection (tcp).
	Reach(ctx context.Context, t probe.Target) error
}
