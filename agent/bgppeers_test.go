package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/bringup"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/agent/tf/tfcontract"
	"github.com/tfsite/tfsite/agent/underlay"
	"github.com/tfsite/tfsite/internal/probe"
	"github.com/tfsite/tfsite/internal/testrig"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// answeringProber: the gateway and every target answer (a healthy host).
type answeringProber struct{}

func (answeringProber) ARP(context.Context, probe.Target) error   { return nil }
func (answeringProber) Reach(context.Context, probe.Target) error { return nil }

// TestBringUpFollowsMembership runs three in-process agents and, for site-a,
// the bring-up process (bringup.Daemon) talking to its agent over the API
// socket only, as tfsite-bringup.service does: a real etcd + kube-apiserver
// (the kubeconfig exists, so kubeadm init is not run) and TF's config API
// (contract server). The TF objects carry site-a's allocation and underlay;
// the other sites become BGP peers with their gossip-published ASNs and
// addresses; the agent's status carries the daemon's report; a departed site
// stays a peer until it is released, then its peering is removed.
func TestBringUpFollowsMembership(t *testing.T) {
	bin := testrig.KubeBin(t, kube.KubernetesVersion, "kube-apiserver")
	testrig.KubeBin(t, kube.KubernetesVersion, "etcd")
	kapi := testrig.StartKubeAPI(t, filepath.Dir(bin))
	dyn, err := dynamic.NewForConfig(kapi.Config)
	if err != nil {
		t.Fatal(err)
	}
	node := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": "site-a"}}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "nodes"}).Create(t.Context(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vnc := tfcontract.New(t, "site-a")

	l := newLab(t, "site-a")
	cfg := l.config("site-a", 1)
	cfg.Underlay.Disabled = false
	gateway := l.net + "254"
	discover := func(context.Context, underlay.Options, *slog.Logger) (*underlay.Result, error) {
		return &underlay.Result{Interface: "eth0", Address: cfg.Gossip.BindAddress + "/24", Gateway: gateway, GatewaySource: "dhcp-option-3"}, nil
	}
	cfg.Gossip.AdvertiseAddress = cfg.Gossip.BindAddress
	cfg.BringUp.Enabled = true
	cfg.BringUp.Kubeconfig = filepath.Join(l.dir, "admin.conf")
	kapi.WriteKubeconfig(t, cfg.BringUp.Kubeconfig)
	cfg.BringUp.Preflight.Skip = true
	cfg.BringUp.ConfigAPI = vnc.URL
	cfg.BringUp.GuardWindow = config.Duration(3 * time.Second)
	cfg.BringUp.VrouterStart = 0 // no vrouter in this test
	cfg.BringUp.Interval = config.Duration(time.Second)
	k := netguard.NewModel(&netguard.State{Links: []netguard.Link{{Name: "eth0", Up: true, MTU: 1500}}})
	l.startConfig(cfg, WithDiscover(discover))
	l.start("site-b", 2)
	l.start("site-c", 3)
	all := l.waitAll(60 * time.Second)

	// Before the bring-up process reports, status says it has not started.
	if st, err := l.status("site-a"); err != nil || st.BringUp == nil || st.BringUp.Phase != api.BringUpNotStarted {
		t.Fatalf("status before the bring-up process: %+v (%v), want phase %s", st.BringUp, err, api.BringUpNotStarted)
	}
	d, err := bringup.NewDaemon(cfg, testLogger(t, "site-a/bringup"),
		bringup.WithNetGuard(netguard.WithKernel(k), netguard.WithProber(answeringProber{})), bringup.WithPoll(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon Run: %v", err)
		}
		d.Close()
		d.Close()
	})

	// Bring-up converges: ready, both peers configured in TF.
	var st api.Status
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err = l.status("site-a")
		if err == nil && st.BringUp != nil && st.BringUp.Phase == bringup.PhaseReady && st.BringUp.PeersConfigured == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bring-up did not converge: %+v (err %v)", st.BringUp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := st.BringUp.Vrouter; v == nil || !v.Confirmed {
		t.Fatalf("vrouter start not confirmed: %+v", v)
	}
	if n := len(k.Converged()); n != 0 {
		t.Fatalf("healthy vrouter start reverted %d times", n)
	}

	// The TF deployment carries site-a's allocation and discovered gateway.
	al := all["site-a"].Allocation
	env, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(tf.Namespace).Get(t.Context(), "env", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedStringMap(env.Object, "data")
	if data["BGP_ASN"] != strconvU(al.ASN) || data["VROUTER_GATEWAY"] != gateway || data["KUBERNETES_POD_SUBNETS"] != al.Pod.String() {
		t.Fatalf("env ConfigMap %v, want BGP_ASN %d, VROUTER_GATEWAY %s, pod subnets %s", data, al.ASN, gateway, al.Pod)
	}
	if vnc.ClusterASN() != al.ASN {
		t.Fatalf("TF cluster ASN %d, want site-a's %d", vnc.ClusterASN(), al.ASN)
	}

	// Every other site is a BGP peer with its own ASN and address.
	for _, peer := range []string{"site-b", "site-c"} {
		checkRouter(t, vnc, peer, all[peer].Allocation.ASN, l.sites[peer].cfg.Gossip.BindAddress)
	}

	// site-c leaves: it stays a BGP peer until it is released, then its
	// peering goes.
	l.stop("site-c")
	if peers, err := api.NewClient(cfg.APISocket).BGPPeers(t.Context()); err != nil || !slices.ContainsFunc(peers, func(p site.BGPPeer) bool { return p.Site == "site-c" }) {
		t.Fatalf("departed, unreleased site-c is no longer a BGP peer: %+v (%v)", peers, err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		err := api.NewClient(cfg.APISocket).Release(t.Context(), "site-c")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("releasing site-c: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	deadline = time.Now().Add(30 * time.Second)
	for slices.Contains(vnc.Routers(), tf.PeerName("site-c")) {
		if time.Now().After(deadline) {
			t.Fatalf("released site-c still a BGP peer in TF: %v", vnc.Routers())
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkRouter(t, vnc, "site-b", all["site-b"].Allocation.ASN, l.sites["site-b"].cfg.Gossip.BindAddress)
}

func checkRouter(t *testing.T, vnc *tfcontract.Server, site string, asn uint32, addr string) {
	t.Helper()
	raw, _, ok := vnc.Router(tf.PeerName(site))
	if !ok {
		t.Fatalf("no bgp-router for %s in TF: %v", site, vnc.Routers())
	}
	var p struct {
		ASN     uint32 `json:"autonomous_system"`
		Address string `json:"address"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if p.ASN != asn || p.Address != addr {
		t.Fatalf("bgp-router %s: ASN %d address %s, want %d %s", site, p.ASN, p.Address, asn, addr)
	}
}

func strconvU(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// TestBGPPeersSurviveRestart: a site that departs while its peer's agent is
// down is unknown to that agent's gossip when it restarts, yet it holds its
// allocation, so it must still be a BGP peer (from <stateDir>/bgp-peers.json)
// until it is released.
func TestBGPPeersSurviveRestart(t *testing.T) {
	l := newLab(t, "site-a")
	l.start("site-a", 1)
	l.start("site-b", 2)
	all := l.waitAll(60 * time.Second)
	peersOf := func() []site.BGPPeer {
		t.Helper()
		peers, err := api.NewClient(l.sites["site-a"].cfg.APISocket).BGPPeers(t.Context())
		if err != nil {
			t.Fatalf("BGP peers of site-a: %v", err)
		}
		return peers
	}
	want := []site.BGPPeer{{Site: "site-b", ASN: all["site-b"].Allocation.ASN, Address: netip.MustParseAddr(l.net + "2"), Pod: all["site-b"].Allocation.Pod}}
	if got := peersOf(); !slices.Equal(got, want) {
		t.Fatalf("BGP peers = %+v, want %+v", got, want)
	}

	// site-a stops, then site-b departs; site-a comes back alone.
	l.stop("site-a")
	l.stop("site-b")
	l.start("site-a", 1)
	l.waitAll(30 * time.Second)
	if got := peersOf(); !slices.Equal(got, want) {
		t.Fatalf("after a restart, BGP peers = %+v, want the departed, unreleased site-b %+v", got, want)
	}

	// Released: dropped from the list and from the file.
	if err := api.NewClient(l.sites["site-a"].cfg.APISocket).Release(t.Context(), "site-b"); err != nil {
		t.Fatal(err)
	}
	if got := peersOf(); len(got) != 0 {
		t.Fatalf("after the release, BGP peers = %+v, want none", got)
	}
	saved, err := readBGPPeers(filepath.Join(l.sites["site-a"].cfg.StateDir, BGPPeersFile))
	if err != nil || len(saved) != 0 {
		t.Fatalf("saved peers after the release = %+v (%v), want none", saved, err)
	}
}

func TestDecodeBGPPeers(t *testing.T) {
	good := `[{"site":"b","asn":64513,"address":"192.0.2.2"},{"site":"c","asn":64514,"address":"2001:db8::3"}]`
	peers, err := DecodeBGPPeers([]byte(good))
	if err != nil || len(peers) != 2 || peers[1].Address != netip.MustParseAddr("2001:db8::3") {
		t.Fatalf("DecodeBGPPeers(good) = %+v, %v", peers, err)
	}
	for in, want := range map[string]string{
		``:   "not a BGP peer list",
		`{}`: "not a BGP peer list",
		`[{"site":"b","asn":1,"address":"192.0.2.2","extra":1}]`:                                  `unknown field "extra"`,
		`[{"site":"b","asn":1,"address":"192.0.2.2"}] []`:                                         "data after the JSON value",
		`[{"site":"b","asn":1,"address":"192.0.2.2"}]]`:                                           "data after the JSON value",
		`[{"site":"","asn":1,"address":"192.0.2.2"}]`:                                             "no site name",
		`[{"site":"b","asn":0,"address":"192.0.2.2"}]`:                                            `"b" has no ASN`,
		`[{"site":"b","asn":1}]`:                                                                  `"b" has no address`,
		`[{"site":"b","asn":1,"address":"192.0.2.2"},{"site":"b","asn":2,"address":"192.0.2.3"}]`: "listed twice",
		`[{"site":"b","asn":1,"address":"not-an-ip"}]`:                                            "not a BGP peer list",
	} {
		if _, err := DecodeBGPPeers([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeBGPPeers(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestReadBGPPeersNamesTheFileAndTheFix(t *testing.T) {
	dir := t.TempDir()
	if peers, err := readBGPPeers(filepath.Join(dir, "absent.json")); err != nil || peers != nil {
		t.Fatalf("absent file: %+v, %v, want no peers and no error", peers, err)
	}
	path := filepath.Join(dir, BGPPeersFile)
	os.WriteFile(path, []byte("[{"), 0o644)
	_, err := readBGPPeers(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "delete the file") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("corrupt file: %v, want one line naming %s and the fix", err, path)
	}
	want := []site.BGPPeer{{Site: "b", ASN: 64513, Address: netip.MustParseAddr("192.0.2.2")}}
	if err := writeBGPPeers(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err := readBGPPeers(path); err != nil || !slices.Equal(got, want) {
		t.Fatalf("round trip: %+v, %v, want %+v", got, err, want)
	}
}

func FuzzDecodeBGPPeers(f *testing.F) {
	f.Add([]byte(`[{"site":"b","asn":64513,"address":"192.0.2.2"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"site":"b","asn":1,"address":"::1"},{"site":"b"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := DecodeBGPPeers(b)
		if err != nil {
			return
		}
		enc, err := json.Marshal(peers)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", peers, err)
		}
		again, err := DecodeBGPPeers(enc)
		if err != nil || !slices.Equal(again, peers) {
			t.Fatalf("round trip of %s: %+v, %v", enc, again, err)
		}
	})
}

// TestPeersFromTable: the committed table decides who is a peer and with
// which ASN and pod; gossip only says where.
func TestPeersFromTable(t *testing.T) {
	pfx, addr := netip.MustParsePrefix, netip.MustParseAddr
	table := []site.Allocation{
		{Site: "alpha", ASN: 64512, Pod: pfx("10.32.0.0/21")},
		{Site: "beta", ASN: 64513, Pod: pfx("10.32.8.0/21")},
		{Site: "gone", ASN: 64514, Pod: pfx("10.32.16.0/21")},
		{Site: "new", ASN: 64515, Pod: pfx("10.32.24.0/21")},
	}
	gossip := map[string]netip.Addr{"beta": addr("192.168.1.2"), "released": addr("192.168.1.9")}
	saved := map[string]site.BGPPeer{
		"beta":     {Site: "beta", ASN: 1, Address: addr("192.168.9.9")},
		"gone":     {Site: "gone", ASN: 64514, Address: addr("192.168.1.3")},
		"released": {Site: "released", ASN: 64520, Address: addr("192.168.1.9")},
	}
	got := peersFromTable("alpha", table, gossip, saved)
	want := map[string]site.BGPPeer{
		// gossip's address, the table's ASN (not the stale saved one)
		"beta": {Site: "beta", ASN: 64513, Address: addr("192.168.1.2"), Pod: pfx("10.32.8.0/21")},
		// gossip forgot it: the saved address, the committed values
		"gone": {Site: "gone", ASN: 64514, Address: addr("192.168.1.3"), Pod: pfx("10.32.16.0/21")},
		// "new" has no known address yet; "released" left the table; alpha is self
	}
	if !maps.Equal(got, want) {
		t.Errorf("peers = %v\nwant %v", got, want)
	}
}
