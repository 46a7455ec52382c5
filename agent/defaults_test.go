package agent

import (
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/membership"
	"github.com/tfsite/tfsite/agent/underlay"
)

// TestConfigDefaultsAreTheComponents: agent/config is a leaf and states its
// defaults itself; they must stay the components' own.
func TestConfigDefaultsAreTheComponents(t *testing.T) {
	d := config.Default()
	if d.Gossip.BindPort != membership.DefaultPort {
		t.Errorf("config gossip port %d, membership's %d", d.Gossip.BindPort, membership.DefaultPort)
	}
	if d.Allocator.BindPort != alloc.DefaultPort {
		t.Errorf("config allocator port %d, alloc's %d", d.Allocator.BindPort, alloc.DefaultPort)
	}
	if got, want := time.Duration(d.Underlay.Timeout), underlay.Default().Timeout; got != want {
		t.Errorf("config discovery timeout %s, underlay's %s", got, want)
	}
}
