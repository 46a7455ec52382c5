package testrig

import (
	"strings"
	"testing"
)

// TestDnsmasqServesDHCP starts dnsmasq in one namespace and gets a lease
// from it with busybox udhcpc in another (a client independent of tfsite).
func TestDnsmasqServesDHCP(t *testing.T) {
	srv := NewNetns(t, "dsrv")
	cli := NewNetns(t, "dcli")
	Veth(t, srv, "eth0", cli, "eth0")
	srv.Run("ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
	udhcpc := RequireCommand(t, "udhcpc", "udhcpc")
	d := StartDnsmasq(t, srv, DnsmasqConfig{Interface: "eth0", Range: "192.0.2.100,192.0.2.100,255.255.255.0,1h"})
	out, err := cli.Command(udhcpc, "-i", "eth0", "-n", "-q", "-f", "-t", "3", "-T", "1", "-s", "/bin/true").CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "192.0.2.100") {
		t.Fatalf("udhcpc did not get 192.0.2.100: %s", out)
	}
	if !strings.Contains(d.Leases(), "192.0.2.100") || !strings.Contains(d.Log(), "DHCPACK") {
		t.Fatalf("dnsmasq has no lease for 192.0.2.100; leases %q log:\n%s", d.Leases(), d.Log())
	}
}
