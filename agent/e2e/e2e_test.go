package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

// TestMultiProcessSites runs four agent processes, each in its own network
// namespace, and checks through `tfsite status --json` that they hold
// distinct ASNs and disjoint prefixes, and that a kill -9 and restart keeps
// a site's numbers.
//
// site-1 is every other site's first seed and has no seed but itself. It
// starts last, once the others have joined each other through the other
// seeds and allocated with two of the three voters: only their rejoin
// rounds can bring it in (in CI, a fleet started in a random order once
// split this way and never merged).
func TestMultiProcessSites(t *testing.T) {
	f := newFleet(t, []string{"site-1", "site-2", "site-3"})
	for i := 1; i <= 4; i++ {
		f.addSite(fmt.Sprintf("site-%d", i))
	}
	for _, name := range []string{"site-2", "site-3", "site-4"} {
		f.start(f.sites[name])
	}
	f.waitConverged(90 * time.Second)
	f.start(f.sites["site-1"])
	all := f.waitConverged(90 * time.Second)
	f.checkSafety(all)
	asns := map[uint32]string{}
	for name, st := range all {
		if other, dup := asns[st.Allocation.ASN]; dup {
			t.Fatalf("%s and %s share ASN %d", name, other, st.Allocation.ASN)
		}
		asns[st.Allocation.ASN] = name
		if len(st.ConfigSources) != 2 {
			t.Errorf("%s: config sources %v, want the file and the command line", name, st.ConfigSources)
		}
	}
	p := f.sites["site-4"]
	p.kill()
	f.start(p)
	f.checkSafety(f.waitConverged(60 * time.Second))
}

// TestAgentUsesDiscoveredUnderlay runs one agent with underlay discovery on,
// against a real dnsmasq across a veth, and checks that status reports the
// discovered interface, address and gateway, and that gossip advertises the
// leased address. As on the appliance (systemd-networkd holds the lease), the
// address is configured on the link; discovery itself changes nothing.
func TestAgentUsesDiscoveredUnderlay(t *testing.T) {
	f := newFleet(t, []string{"solo"})
	p := f.addSite("solo")
	// The fleet's address plan is not used here: put the site on its own
	// DHCP-served subnet, behind a dnsmasq router namespace.
	p.ns.Run("ip", "addr", "flush", "dev", "eth0")
	p.ns.Run("ip", "addr", "add", "10.251.0.50/24", "dev", "eth0")
	f.hub.Run("ip", "addr", "add", "10.251.0.1/24", "dev", "br0")
	testrig.StartDnsmasq(t, f.hub, testrig.DnsmasqConfig{
		Interface: "br0",
		Range:     "10.251.0.50,10.251.0.50,255.255.255.0,1h",
		Options:   []string{"3,10.251.0.1"},
	})
	conf := filepath.Join(p.dir, "config.yaml")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "underlay:\n  disabled: true\n", "underlay:\n  interface: eth0\n  timeout: 10s\n", 1)
	text = strings.Replace(text, "seeds: ["+p.ip+"]", "seeds: []", 1)
	write(t, conf, text)
	// Bind everywhere: the advertise address must come from discovery.
	write(t, filepath.Join(p.dir, "cmdline"), "tfsite.site=solo tfsite.bind=0.0.0.0\n")
	f.start(p)
	st := f.waitConverged(60 * time.Second)["solo"]
	u := st.Underlay
	if u == nil || u.Interface != "eth0" || u.Gateway != "10.251.0.1" || u.Address != "10.251.0.50/24" {
		t.Fatalf("underlay in status = %+v, want eth0 10.251.0.50/24 gateway 10.251.0.1", u)
	}
	if !strings.HasPrefix(st.Gossip, "10.251.0.50:") {
		t.Errorf("gossip advertises %q, want the leased address 10.251.0.50", st.Gossip)
	}
}
