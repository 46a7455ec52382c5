package peering

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/testrig"
)

func testLocal() Local {
	return Local{Site: "alpha", ASN: 64601, RouterID: netip.MustParseAddr("10.0.1.10"),
		Address: netip.MustParseAddr("10.0.1.10"), Announce: []netip.Prefix{netip.MustParsePrefix("10.40.0.0/16")}, InstallRoutes: true}
}

func testPeers() []Peer {
	return []Peer{
		{Name: "gamma-x", Address: netip.MustParseAddr("10.0.3.10"), ASN: 4200000003},
		{Name: "beta", Address: netip.MustParseAddr("10.0.2.10"), ASN: 64602, Accept: []netip.Prefix{netip.MustParsePrefix("10.50.0.0/16")}},
	}
}

func write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// birdParse runs the real BIRD 2 parser (`bird -p`) on a config.
func birdParse(t *testing.T, conf []byte) error {
	t.Helper()
	bird := testrig.RequireCommand(t, "bird", "bird2")
	out, err := exec.Command(bird, "-p", "-c", write(t, "bird.conf", conf)).CombinedOutput()
	if err != nil {
		return &cmdErr{err, string(out)}
	}
	return nil
}

// frrCheck runs FRR's own parser (`vtysh --dryrun`) on a config.
func frrCheck(t *testing.T, conf []byte) error {
	t.Helper()
	vtysh := testrig.RequireCommand(t, "vtysh", "frr")
	out, err := exec.Command(vtysh, "--dryrun", "-f", write(t, "frr.conf", conf)).CombinedOutput()
	if err != nil {
		return &cmdErr{err, string(out)}
	}
	return nil
}

type cmdErr struct {
	err error
	out string
}

func (e *cmdErr) Error() string { return e.err.Error() + ": " + e.out }

func TestBIRDConfigParses(t *testing.T) {
	conf, err := BIRD(testLocal(), testPeers())
	if err != nil {
		t.Fatal(err)
	}
	if err := birdParse(t, conf); err != nil {
		t.Fatalf("bird rejects the rendered config: %v\n%s", err, conf)
	}
	s := string(conf)
	for _, want := range []string{"router id 10.0.1.10;", "local 10.0.1.10 as 64601;", "neighbor 10.0.2.10 as 64602;",
		"neighbor 10.0.3.10 as 4200000003;", "route 10.40.0.0/16 blackhole;", "protocol bgp peer_gamma_x", "10.50.0.0/16+",
		"protocol kernel"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q", want)
		}
	}
	if strings.Index(s, "peer_beta") > strings.Index(s, "peer_gamma_x") {
		t.Error("peers not in a stable order")
	}
	// The parser check has teeth.
	if err := birdParse(t, bytes.Replace(conf, []byte("neighbor 10.0.2.10"), []byte("neighbour 10.0.2.10"), 1)); err == nil {
		t.Fatal("bird -p accepted a broken config")
	}
}

func TestFRRConfigParses(t *testing.T) {
	conf, err := FRR(testLocal(), testPeers())
	if err != nil {
		t.Fatal(err)
	}
	if err := frrCheck(t, conf); err != nil {
		t.Fatalf("vtysh --dryrun rejects the rendered config: %v\n%s", err, conf)
	}
	s := string(conf)
	for _, want := range []string{"router bgp 64601", "bgp router-id 10.0.1.10", "neighbor 10.0.2.10 remote-as 64602",
		"neighbor 10.0.3.10 remote-as 4200000003", "network 10.40.0.0/16", "prefix-list TFSITE-IN-BETA in"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q", want)
		}
	}
	if err := frrCheck(t, bytes.Replace(conf, []byte("remote-as 64602"), []byte("remote-ass 64602"), 1)); err == nil {
		t.Fatal("vtysh --dryrun accepted a broken config")
	}
}

func TestNoPeersStillParses(t *testing.T) {
	l := testLocal()
	l.Address, l.InstallRoutes = netip.Addr{}, false
	b, err := BIRD(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := birdParse(t, b); err != nil {
		t.Fatal(err)
	}
	f, err := FRR(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := frrCheck(t, f); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	l := testLocal()
	l.Site, l.ASN, l.Announce = "Alpha", 0, []netip.Prefix{netip.MustParsePrefix("10.40.0.1/16")}
	ps := append(testPeers(), Peer{Name: "beta", Address: netip.MustParseAddr("fd00::1")},
		Peer{Name: "delta", Address: netip.MustParseAddr("10.0.4.10"), ASN: 1, Accept: []netip.Prefix{netip.MustParsePrefix("10.40.128.0/17")}})
	_, err := Render("bird", l, ps)
	for _, want := range []string{`local site "Alpha"`, "local asn", "host bits", "listed twice", "must be IPv4", "ASN missing", "overlaps"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := Render("quagga", testLocal(), nil); err == nil || !strings.Contains(err.Error(), "bird or frr") {
		t.Fatalf("format: %v", err)
	}
}

// A peer with the site's own ASN or own address is refused, naming the
// peer and why.
func TestValidateRefusesPeeringWithItself(t *testing.T) {
	l := testLocal()
	l.RouterID = netip.MustParseAddr("10.0.1.1")
	for _, tc := range []struct {
		peer Peer
		want string
	}{
		{Peer{Name: "beta", Address: netip.MustParseAddr("10.0.2.10"), ASN: 64601}, `peer "beta": asn 64601 is this site's own ASN`},
		{Peer{Name: "beta", Address: netip.MustParseAddr("10.0.1.10"), ASN: 64602}, `peer "beta": address 10.0.1.10 is this site's own address`},
		{Peer{Name: "beta", Address: netip.MustParseAddr("10.0.1.1"), ASN: 64602}, `peer "beta": address 10.0.1.1 is this site's router id`},
	} {
		_, err := Render("frr", l, []Peer{tc.peer})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("peer %+v: err = %v, want %q", tc.peer, err, tc.want)
		}
	}
}
