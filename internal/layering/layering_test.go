package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/tfsite/tfsite/"

// heavy are the modules a leaf must not link: consensus, its store, gossip,
// the DHCP client and netlink (which also keep a leaf from building off Linux).
var heavy = []string{
	"github.com/hashicorp/raft",
	"go.etcd.io/bbolt",
	"github.com/hashicorp/memberlist",
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4",
	"github.com/vishvananda/netlink",
}

// deps lists every package pkg links (go list -deps), for GOOS goos.
func deps(t *testing.T, goos, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", mod+pkg)
	cmd.Env = append(cmd.Environ(), "GOOS="+goos, "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s (GOOS=%s): %s", pkg, goos, msg)
	}
	return strings.Fields(string(out))
}

func TestLeavesLinkNoHeavyModule(t *testing.T) {
	for _, pkg := range []string{"agent/config", "agent/site", "agent/pools", "agent/sitename", "agent/kube", "agent/api", "internal/probe", "internal/hostport"} {
		for _, d := range deps(t, "linux", pkg) {
			for _, h := range heavy {
				if strings.HasPrefix(d, h) {
					t.Errorf("%s links %s; a leaf takes values, not components (docs/architecture.md, Rules)", pkg, d)
				}
			}
		}
	}
}

func TestBringUpLinksNoConsensusOrGossip(t *testing.T) {
	for _, d := range deps(t, "linux", "agent/bringup") {
		for _, h := range heavy[:3] {
			if strings.HasPrefix(d, h) {
				t.Errorf("agent/bringup links %s; it reads the allocation through the agent's API", d)
			}
		}
	}
}

// TestRecoveryUsesNoAgentComponent: the recovery console must work when the
// agent is dead or broken, so recovery/* links only the agent's API client
// and the discovery library (and the value leaves they use), never a
// running component.
func TestRecoveryUsesNoAgentComponent(t *testing.T) {
	allowed := []string{mod + "agent/api", mod + "agent/underlay", mod + "agent/site", mod + "agent/sitename"}
	for _, pkg := range []string{"recovery/console", "recovery/netguard", "recovery/oob"} {
		for _, d := range deps(t, "linux", pkg) {
			if strings.HasPrefix(d, mod+"agent/") && !slices.Contains(allowed, d) {
				t.Errorf("%s links %s; recovery/* may use only %v", pkg, d, allowed)
			}
		}
	}
}

func TestGossipAndConsensusAreApart(t *testing.T) {
	for pkg, other := range map[string]string{"agent/membership": "agent/alloc", "agent/alloc": "agent/membership"} {
		if slices.Contains(deps(t, "linux", pkg), mod+other) {
			t.Errorf("%s links %s; they meet only at the wiring point (agent/agent.go) through agent/site values", pkg, other)
		}
	}
}
