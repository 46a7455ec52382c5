package netguard

import (
	"context"

	"github.com/tfsite/tfsite/internal/probe"
)

// Kernel is netguard's boundary to the host's network stack.
type Kernel interface {
	// Snapshot reads links, addresses, routes (all tables but local) and rules.
	Snapshot() (*State, error)
	// Apply performs one plan operation.
	Apply(op Operation) error
	// Restore converges the host to s, deleting removeLinks first.
	Restore(s *State, removeLinks []string) error
}

// Prober answers whether something is reachable right now.
type Prober interface {
	// ARP asks gw for its hardware address on the link that routes to it.
	ARP(ctx context.Context, gw probe.Target) error
	// Reach sends an ICMP echo (icmp) or opens a TCP connection (tcp).
	Reach(ctx context.Context, t probe.Target) error
}
