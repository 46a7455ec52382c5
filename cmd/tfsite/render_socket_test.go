package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/internal/testrig"
)

// fixedAgent is an api.Backend answering with a fixed status and BGP peers.
type fixedAgent struct {
	st  api.Status
	bgp []site.BGPPeer
}

func (b *fixedAgent) Status(context.Context) api.Status     { return b.st }
func (b *fixedAgent) Peers(context.Context) []api.Peer      { return b.st.Peers }
func (b *fixedAgent) Release(context.Context, string) error { return api.ErrConflict }
func (b *fixedAgent) BGPPeers(context.Context) ([]site.BGPPeer, error) {
	if b.st.Allocation == nil {
		return nil, api.ErrUnavailable
	}
	return b.bgp, nil
}

// serveAgent serves st and bgp on a real API socket, as `tfsite agent` does.
func serveAgent(t *testing.T, st api.Status, bgp ...site.BGPPeer) string {
	return testrig.ServeAPI(t, &fixedAgent{st, bgp})
}

var betaPeer = site.BGPPeer{Site: "beta", ASN: 64514, Address: netip.MustParseAddr("192.168.240.12"), Pod: netip.MustParsePrefix("10.32.16.0/21")}

func testAllocation(asn uint32, pod, svc, fabric string) *api.Allocation {
	return &api.Allocation{ASN: asn, Pod: netip.MustParsePrefix(pod), Service: netip.MustParsePrefix(svc), Fabric: netip.MustParsePrefix(fabric)}
}

func TestRenderAndPeeringFromSocket(t *testing.T) {
	st := api.Status{Site: "alpha", Phase: api.PhaseAllocated, Gossip: "192.168.240.11:7946",
		Allocation: testAllocation(64513, "10.32.8.0/21", "10.96.4.0/22", "10.64.4.0/22"),
		Underlay:   &api.Underlay{Interface: "eth0", Address: "192.168.11.10/24", Gateway: "192.168.11.1", GatewaySource: "dhcp-option-3"},
		Peers: []api.Peer{
			{Site: "beta", State: api.StateAlive, Address: "192.168.240.12:7946", Underlay: "192.168.240.12",
				Allocation: testAllocation(64514, "10.32.16.0/21", "10.96.8.0/22", "10.64.8.0/22")},
			{Site: "gamma", State: api.StateAlive, Address: "192.168.240.13:7946"},
		}}
	// gamma gossips but holds no committed allocation: not a BGP peer.
	sock := serveAgent(t, st, betaPeer)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := runCmd(t, "render", "--socket", sock, "--out", out); err != nil {
		t.Fatal(err)
	}
	kubeadm, _ := os.ReadFile(filepath.Join(out, "kubeadm.yaml"))
	tfYAML, _ := os.ReadFile(filepath.Join(out, "tf.yaml"))
	for _, want := range []string{"podSubnet: 10.32.8.0/21", "serviceSubnet: 10.96.4.0/22", "clusterName: alpha", "advertiseAddress: 192.168.11.10"} {
		if !strings.Contains(string(kubeadm), want) {
			t.Errorf("kubeadm.yaml lacks %q:\n%s", want, kubeadm)
		}
	}
	for _, want := range []string{"VROUTER_GATEWAY: 192.168.11.1", `BGP_ASN: "64513"`, "PHYSICAL_INTERFACE: eth0", "KUBERNETES_IP_FABRIC_SUBNETS: 10.64.4.0/22"} {
		if !strings.Contains(string(tfYAML), want) {
			t.Errorf("tf.yaml lacks %q", want)
		}
	}
	conf, err := runCmd(t, "peering", "--format", "bird", "--socket", sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"router id 192.168.240.11;", "local 192.168.240.11 as 64513;", "route 10.32.8.0/21 blackhole;",
		"neighbor 192.168.240.12 as 64514;", "import where net ~ [ 10.32.16.0/21+ ];"} {
		if !strings.Contains(conf, want) {
			t.Errorf("bird config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "gamma") {
		t.Errorf("a site without an allocation was peered:\n%s", conf)
	}
	if conf, err := runCmd(t, "peering", "--format", "frr", "--socket", sock, "--address", "192.168.240.99"); err != nil ||
		!strings.Contains(conf, "bgp router-id 192.168.240.99") || !strings.Contains(conf, "neighbor 192.168.240.12 remote-as 64514") {
		t.Errorf("frr with --address: %v\n%s", err, conf)
	}
}

func TestRenderFromSocketErrors(t *testing.T) {
	waiting := serveAgent(t, api.Status{Site: "alpha", Phase: "requesting", Gossip: "10.0.0.1:7946"})
	gone := filepath.Join(t.TempDir(), "nobody.sock")
	out := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"render", "--socket", waiting, "--out", out}, exitNotAllocated, "requesting"},
		{[]string{"peering", "--socket", waiting}, exitNotAllocated, "no allocation"},
		{[]string{"render", "--socket", gone, "--out", out}, exitAgentDown, "not reachable"},
		{[]string{"peering", "--socket", gone}, exitAgentDown, "not reachable"},
		{[]string{"peering", "--socket", waiting, "--asn", "1"}, exitRenderUsage, "drop --asn"},
		{[]string{"render", "--socket", waiting, "--config", "x.yaml", "--out", out}, exitRenderUsage, "not both"},
	} {
		_, err := runCmd(t, c.args...)
		if exitCode(err) != c.code || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: exit %d (%v), want %d and %q", c.args, exitCode(err), err, c.code, c.want)
		}
	}
}

// `tfsite peers --format` renders the same configuration as `tfsite peering --socket`.
func TestPeersFormatMatchesPeering(t *testing.T) {
	st := api.Status{Site: "alpha", Phase: api.PhaseAllocated, Gossip: "192.168.240.11:7946",
		Allocation: testAllocation(64513, "10.32.8.0/21", "10.96.4.0/22", "10.64.4.0/22"),
		Peers: []api.Peer{{Site: "beta", State: api.StateAlive, Address: "192.168.240.12:7946",
			Allocation: testAllocation(64514, "10.32.16.0/21", "10.96.8.0/22", "10.64.8.0/22")}}}
	sock := serveAgent(t, st, betaPeer)
	for _, format := range []string{"bird", "frr"} {
		viaPeers, err := runCmd(t, "peers", "--format", format, "--socket", sock)
		if err != nil {
			t.Fatalf("peers --format %s: %v", format, err)
		}
		viaPeering, err := runCmd(t, "peering", "--format", format, "--socket", sock)
		if err != nil {
			t.Fatal(err)
		}
		if viaPeers != viaPeering || !strings.Contains(viaPeers, "64514") {
			t.Errorf("peers --format %s differs from peering or lacks the peer ASN:\n%s\n---\n%s", format, viaPeers, viaPeering)
		}
	}
	if _, err := runCmd(t, "peers", "--format", "quagga", "--socket", sock); err == nil {
		t.Error("peers --format quagga: want an error")
	}
	if _, err := runCmd(t, "peers", "--format", "bird", "--json", "--socket", sock); err == nil {
		t.Error("peers --format with --json: want an error")
	}
}
