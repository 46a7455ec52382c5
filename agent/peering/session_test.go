package peering

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

// TestBIRDSessionsCarryPodPrefixes runs two real BIRD 2 daemons, one per site,
// in network namespaces joined by a veth, each configured from BIRD(): the
// session must reach Established, each site must learn the other's pod prefix
// into its kernel, and a ping from an address in site A's pod prefix must reach
// one in site B's.
func TestBIRDSessionsCarryPodPrefixes(t *testing.T) {
	testrig.RequireRoot(t)
	bird := testrig.RequireCommand(t, "bird", "bird2")
	birdc := testrig.RequireCommand(t, "birdc", "bird2")
	type site struct {
		name, addr, pod, podIP string
		asn                    uint32
		ns                     *testrig.Netns
		sock                   string
	}
	sites := []*site{
		{name: "alpha", addr: "10.99.12.1", pod: "10.40.0.0/16", podIP: "10.40.0.1", asn: 64601},
		{name: "beta", addr: "10.99.12.2", pod: "10.50.0.0/16", podIP: "10.50.0.1", asn: 4200000002},
	}
	for _, s := range sites {
		s.ns = testrig.NewNetns(t, "bgp"+s.name[:1])
	}
	testrig.Veth(t, sites[0].ns, "eth0", sites[1].ns, "eth0")
	dir := t.TempDir()
	for i, s := range sites {
		other := sites[1-i]
		s.ns.Run("ip", "addr", "add", s.addr+"/24", "dev", "eth0")
		s.ns.Run("ip", "link", "set", "eth0", "up")
		s.ns.Run("ip", "addr", "add", s.podIP+"/32", "dev", "lo")
		conf, err := BIRD(Local{Site: s.name, ASN: s.asn, RouterID: netip.MustParseAddr(s.addr), Address: netip.MustParseAddr(s.addr),
			Announce: []netip.Prefix{netip.MustParsePrefix(s.pod)}, InstallRoutes: true},
			[]Peer{{Name: other.name, Address: netip.MustParseAddr(other.addr), ASN: other.asn,
				Accept: []netip.Prefix{netip.MustParsePrefix(other.pod)}}})
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, s.name+".conf")
		if err := os.WriteFile(cfg, conf, 0o644); err != nil {
			t.Fatal(err)
		}
		s.sock = filepath.Join(dir, s.name+".ctl")
		cmd := s.ns.Command(bird, "-f", "-c", cfg, "-s", s.sock, "-P", filepath.Join(dir, s.name+".pid"))
		logf, _ := os.Create(filepath.Join(dir, s.name+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	}
	deadline := time.Now().Add(40 * time.Second)
	for _, s := range sites {
		for {
			out, _ := s.ns.Command(birdc, "-s", s.sock, "show", "protocols").CombinedOutput()
			route, _ := s.ns.Command("ip", "route", "show", sites[1-indexOf(sites, s)].pod).Output()
			if strings.Contains(string(out), "Established") && strings.Contains(string(route), "via") {
				t.Logf("%s:\n%s%s", s.name, out, route)
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, s.name+".log"))
				t.Fatalf("%s: no established session with the pod route installed:\n%s\nroute: %q\nlog:\n%s", s.name, out, route, log)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	sites[0].ns.Run("ping", "-c", "1", "-W", "2", "-I", sites[0].podIP, sites[1].podIP)
	// The own prefix must never come back from a peer.
	if out := sites[0].ns.Run("ip", "route", "show", sites[0].pod); strings.Contains(out, "via") {
		t.Fatalf("alpha learned its own pod prefix back: %s", out)
	}
}

func indexOf[T comparable](xs []T, x T) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}
