package netguard

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/probe"
	"github.com/tfsite/tfsite/internal/testrig"
)

// TestNetProberAnswersAndSilences checks each probe against a live and an
// absent peer from the lab's host namespace.
func TestNetProberAnswersAndSilences(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	l := newLab(t)
	icmp := func(a string) probe.Target {
		return probe.Target{Proto: "icmp", Addr: netip.AddrPortFrom(netip.MustParseAddr(a), 0)}
	}
	tcp := func(a string) probe.Target { t, _ := probe.Parse("tcp:" + a); return t }
	cases := []struct {
		name string
		arp  bool
		t    probe.Target
		ok   bool
	}{
		{"arp gateway", true, icmp(gwAddr), true},
		{"arp absent", true, icmp("10.0.0.99"), false},
		{"echo gateway", false, icmp(gwAddr), true},
		{"echo operator", false, icmp(operatorAddr), true},
		{"echo absent", false, icmp("10.0.0.99"), false},
		{"tcp operator", false, tcp(operatorAddr + ":6443"), true},
		{"tcp closed port", false, tcp(operatorAddr + ":1"), false},
	}
	for _, c := range cases {
		err := l.host.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			defer cancel()
			if c.arp {
				return NetProber{}.ARP(ctx, c.t)
			}
			return NetProber{}.Reach(ctx, c.t)
		})
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
