package testrig

import (
	"testing"

	"github.com/tfsite/tfsite/internal/lab"
)

// DnsmasqConfig describes one real dnsmasq DHCP server in a namespace
// (internal/lab: the same servers run in the demo and the benchmarks).
type DnsmasqConfig = lab.DnsmasqConfig

// Dnsmasq is a running dnsmasq; it is stopped when the test ends.
type Dnsmasq struct {
	*lab.Dnsmasq
}

// StartDnsmasq starts dnsmasq inside ns and waits until it serves DHCP. Its
// log is reported when the test fails; Log returns it.
func StartDnsmasq(t testing.TB, ns *Netns, cfg DnsmasqConfig) *Dnsmasq {
	t.Helper()
	RequireCommand(t, "dnsmasq", "dnsmasq-base")
	d, err := lab.StartDnsmasq(ns.Name, cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", d.Log())
		}
	})
	return &Dnsmasq{d}
}
