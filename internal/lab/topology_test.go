package lab_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/lab"
	"github.com/tfsite/tfsite/internal/testrig"
)

func ping(ns, addr string) error {
	out, err := lab.Command(ns, "ping", "-c1", "-W2", addr).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v: %s", addr, ns, err, out)
	}
	return nil
}

func namespacesWith(prefix string) []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var got []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			got = append(got, f[0])
		}
	}
	return got
}

// labDir skips without root and dnsmasq and returns a lab directory, torn
// down when the test ends, and a namespace prefix unique to this test.
func labDir(t *testing.T, tag string) (string, string) {
	t.Helper()
	testrig.RequireRoot(t)
	testrig.RequireCommand(t, "dnsmasq", "dnsmasq-base")
	dir := t.TempDir()
	t.Cleanup(func() { _ = lab.Down(dir) })
	return dir, fmt.Sprintf("tfl-%s%d", tag, os.Getpid())
}

func TestPairServesDHCPAndDownRemovesIt(t *testing.T) {
	dir, prefix := labDir(t, "p")
	p, err := lab.NewPair(prefix, dir, []string{"121,0.0.0.0/0,192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.DHCP.Log(), "DHCP, IP range 192.0.2.100 -- 192.0.2.150") {
		t.Fatalf("dnsmasq does not serve the pair's range:\n%s", p.DHCP.Log())
	}
	if out, err := lab.Command(p.Client, "ip", "addr", "add", "192.0.2.9/24", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := ping(p.Client, "192.0.2.1"); err != nil {
		t.Fatalf("client cannot reach the server over the veth: %v", err)
	}
	if err := lab.Down(dir); err != nil {
		t.Fatal(err)
	}
	if left := namespacesWith(prefix); len(left) != 0 {
		t.Fatalf("Down left namespaces %v", left)
	}
	select {
	case <-p.DHCP.Exited():
	default:
		t.Fatal("Down left dnsmasq running")
	}
}

func TestSitesJoinTransitAndUnderlays(t *testing.T) {
	dir, prefix := labDir(t, "s")
	l, err := lab.NewSites(prefix, dir, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := l.Sites[0], l.Sites[1]
	if a.Gateway != "192.168.11.1" || b.Transit != "192.168.240.12" {
		t.Fatalf("addresses: a gateway %s, b transit %s", a.Gateway, b.Transit)
	}
	if err := ping(a.NS, b.Transit); err != nil {
		t.Fatalf("sites do not reach each other over the transit bridge: %v", err)
	}
	if out, err := lab.Command(a.NS, "ip", "addr", "add", "192.168.11.5/24", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := ping(a.NS, a.Gateway); err != nil {
		t.Fatalf("site a does not reach its underlay router: %v", err)
	}
	if !strings.Contains(b.DHCP.Log(), "DHCP, IP range 192.168.12.10 -- 192.168.12.19") {
		t.Fatalf("b's underlay dnsmasq:\n%s", b.DHCP.Log())
	}
	if got := len(namespacesWith(prefix)); got != 5 {
		t.Fatalf("%d namespaces, want 5 (transit + 2 × site and underlay)", got)
	}
}

func TestNewSitesRefusesNoSites(t *testing.T) {
	if _, err := lab.NewSites("x", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "give 1 to 200 names") {
		t.Fatalf("NewSites(no names) = %v", err)
	}
}
