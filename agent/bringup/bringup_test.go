package bringup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/agent/tf/tfcontract"
	"github.com/tfsite/tfsite/internal/testrig"
	"github.com/tfsite/tfsite/recovery/netguard"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testParams() kube.SiteParams {
	return kube.SiteParams{
		Site: "alpha", ASN: 64601,
		Pod:              netip.MustParsePrefix("10.40.0.0/16"),
		Service:          netip.MustParsePrefix("10.41.0.0/16"),
		Fabric:           netip.MustParsePrefix("10.42.0.0/16"),
		AdvertiseAddress: netip.MustParseAddr("192.168.50.10"), Gateway: netip.MustParseAddr("192.168.50.1"),
		PhysicalInterface: "eth0", NodeName: "alpha-1",
	}
}

// source is what the agent would hand bring-up; tests change it between passes.
type source struct {
	mu     sync.Mutex
	params kube.SiteParams
	ok     bool
	peers  []site.BGPPeer
	// peersErr: the peer list is unavailable (the agent is unreachable).
	peersErr error
	// slow makes each Params call (each pass) take that long.
	slow time.Duration
}

func (s *source) Params() (kube.SiteParams, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	time.Sleep(s.slow)
	if !s.ok {
		return s.params, errors.New("the site's allocation is not known yet (test source)")
	}
	return s.params, nil
}

func (s *source) Peers(context.Context) ([]site.BGPPeer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.peers), s.peersErr
}

func (s *source) set(f func(*source)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

var (
	beta  = site.BGPPeer{Site: "beta", Address: netip.MustParseAddr("10.0.2.10"), ASN: 64602}
	gamma = site.BGPPeer{Site: "gamma", Address: netip.MustParseAddr("10.0.3.10"), ASN: 64603}
)

// confirmingGuard runs the change and confirms it: the unprivileged test
// covers the Kubernetes and TF side; the network side of the guard (a real
// netguard.Guard in a netns lab) is TestVrouterTakeoverReverts.
type confirmingGuard struct {
	mu    sync.Mutex
	specs []netguard.WrapSpec
}

func (g *confirmingGuard) Wrap(ctx context.Context, spec netguard.WrapSpec, change func(context.Context) error) (netguard.Outcome, error) {
	g.mu.Lock()
	g.specs = append(g.specs, spec)
	g.mu.Unlock()
	out := netguard.Outcome{ID: "test-1", Applied: time.Now()}
	if err := change(ctx); err != nil {
		return out, err
	}
	out.Confirmed, out.Reason, out.Ended = true, "healthy for 3s", time.Now()
	return out, nil
}

func (g *confirmingGuard) calls() []netguard.WrapSpec {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.specs)
}

// startAPI starts a real etcd + kube-apiserver.
func startAPI(t *testing.T) *testrig.KubeAPI {
	t.Helper()
	bin := testrig.KubeBin(t, kube.KubernetesVersion, "kube-apiserver")
	testrig.KubeBin(t, kube.KubernetesVersion, "etcd")
	return testrig.StartKubeAPI(t, filepath.Dir(bin))
}

var (
	nodesGVR = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	metaGet  = metav1.GetOptions{}
)

func createNode(t *testing.T, dyn dynamic.Interface, name string) {
	t.Helper()
	n := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": name, "labels": map[string]any{"kubernetes.io/hostname": name}}}}
	if _, err := dyn.Resource(nodesGVR).Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func nodeLabel(t *testing.T, dyn dynamic.Interface, name string) (string, bool) {
	t.Helper()
	n, err := dyn.Resource(nodesGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, ok := n.GetLabels()[tf.VrouterLabel]
	return v, ok
}

// preflightFixture is a host tree that passes every check except ip_forward
// (0): the test flips it to show a failed preflight is retried.
func preflightFixture(t *testing.T, kubeadmBin string) (root string, cfg kube.PreflightConfig) {
	t.Helper()
	root = t.TempDir()
	for p, s := range map[string]string{
		"proc/meminfo":                                "MemTotal:       33554432 kB\n",
		"sys/devices/system/cpu/online":               "0-3\n",
		"proc/sys/kernel/osrelease":                   "6.1.0-test\n",
		"proc/swaps":                                  "Filename\tType\tSize\tUsed\tPriority\n",
		"proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
		"proc/filesystems":                            "nodev\toverlay\n",
		"proc/sys/net/ipv4/ip_forward":                "0\n",
		"var/.keep":                                   "",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(root, "run/containerd/containerd.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return root, kube.PreflightConfig{Root: root, MinMemory: 16 * kube.GiB, MinDisk: 1, MinCPUs: 2, MinKernel: "5.4",
		Kubeadm: kubeadmBin, Kubelet: filepath.Join(filepath.Dir(kubeadmBin), "kubelet")}
}

// runInBackground runs b.Run until the test ends, then stops it (Close twice:
// it must be safe) and checks that Run returned nil. It returns Run's context.
func runInBackground(t *testing.T, b *BringUp) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		b.Close()
		b.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ctx
}

// waitPass waits for a pass after `after` whose status satisfies ok.
func waitPass(t *testing.T, b *BringUp, after int, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := b.Status()
		if s.Passes > after && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			js, _ := json.MarshalIndent(s, "", "  ")
			t.Fatalf("timed out waiting for %s; status:\n%s", what, js)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBringUpAgainstRealKubeadmAndAPIServer drives every step with real
// components: waiting for the allocation, a failed then passing preflight,
// the real `kubeadm init --dry-run` (which leaves no kubeconfig), then a real
// API server: TF manifest applied, node labelled through the guard, peering
// configured in the contract server and following the source's peers.
func TestBringUpAgainstRealKubeadmAndAPIServer(t *testing.T) {
	kubeadm := testrig.KubeBin(t, kube.KubernetesVersion, "kubeadm")
	api := startAPI(t)
	dyn, err := dynamic.NewForConfig(api.Config)
	if err != nil {
		t.Fatal(err)
	}
	vnc := tfcontract.New(t, "") // TF's control node not registered yet
	fixture, pcfg := preflightFixture(t, kubeadm)
	dir := t.TempDir()
	cfg := Default()
	cfg.StateDir = filepath.Join(dir, "bringup")
	cfg.Kubeconfig = filepath.Join(dir, "admin.conf")
	cfg.Kubeadm = kubeadm
	cfg.KubeadmArgs = []string{"--dry-run", "--ignore-preflight-errors=all"}
	cfg.KubeadmEnv = []string{"KUBEADM_INIT_DRYRUN_DIR=" + t.TempDir()}
	cfg.PreflightConfig = pcfg
	cfg.ConfigAPI = vnc.URL
	cfg.ProbeTargets = []string{"icmp:10.9.0.2"}
	cfg.VrouterStart = 0     // no vrouter here: the pass-through guard's window starts at the label
	cfg.Interval = time.Hour // passes only on Wake
	src := &source{}
	guard := &confirmingGuard{}
	b, err := New(cfg, src, guard, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := runInBackground(t, b)

	s := waitPass(t, b, 0, "waiting for params", func(s Status) bool { return s.Phase == PhaseWaiting })
	if !strings.Contains(s.Waiting, "allocation") {
		t.Fatalf("waiting for %q", s.Waiting)
	}

	// Allocation known; the host's ip_forward is off.
	src.set(func(s *source) { s.params, s.ok, s.peers = testParams(), true, []site.BGPPeer{beta, gamma} })
	n := b.Status().Passes
	b.Wake()
	s = waitPass(t, b, n, "preflight-failed", func(s Status) bool { return s.Phase != PhaseWaiting })
	if s.Phase != PhasePreflightFailed || !strings.Contains(s.Error, "ip_forward") || !strings.Contains(s.Error, "sysctl -w net.ipv4.ip_forward=1") {
		t.Fatalf("phase %s error %q, want preflight-failed naming ip_forward and its remedy", s.Phase, s.Error)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, KubeadmLogFile)); !os.IsNotExist(err) {
		t.Fatalf("kubeadm ran despite a failed preflight (%v)", err)
	}

	// Fixed: the next pass runs the real kubeadm init --dry-run, which writes no admin.conf.
	if err := os.WriteFile(filepath.Join(fixture, "proc/sys/net/ipv4/ip_forward"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n = b.Status().Passes
	b.Wake()
	s = waitPass(t, b, n, "kubeadm result", func(Status) bool { return true })
	if s.Phase != PhaseFailed || !strings.Contains(s.Error, "kubeadm init finished but "+cfg.Kubeconfig+" is missing") {
		t.Fatalf("phase %s error %q, want the missing-kubeconfig error", s.Phase, s.Error)
	}
	log := readFile(t, filepath.Join(cfg.StateDir, KubeadmLogFile))
	for _, want := range []string{"--cluster-cidr=10.40.0.0/16", "--service-cluster-ip-range=10.41.0.0/16", "--dry-run"} {
		if !strings.Contains(log, want) {
			t.Errorf("kubeadm-init.log lacks %s", want)
		}
	}
	if y := readFile(t, filepath.Join(cfg.StateDir, KubeadmConfigFile)); !strings.Contains(y, "podSubnet: 10.40.0.0/16") || !strings.Contains(y, "clusterName: alpha") {
		t.Errorf("kubeadm.yaml not rendered from the allocation:\n%s", y)
	}

	// The cluster exists (a real API server); the kubelet has registered the node.
	createNode(t, dyn, "alpha-1")
	api.WriteKubeconfig(t, cfg.Kubeconfig)
	n = b.Status().Passes
	b.Wake()
	s = waitPass(t, b, n, "waiting for TF's control node", func(Status) bool { return true })
	if s.Phase != PhaseWaiting || !strings.Contains(s.Waiting, `control node "alpha-1" is not registered`) || s.Error != "" {
		t.Fatalf("phase %s waiting %q error %q, want waiting for the control node", s.Phase, s.Waiting, s.Error)
	}
	env, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(tf.Namespace).Get(ctx, "env", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedStringMap(env.Object, "data")
	if data["BGP_ASN"] != "64601" || data["VROUTER_GATEWAY"] != "192.168.50.1" || data["KUBERNETES_POD_SUBNETS"] != "10.40.0.0/16" {
		t.Fatalf("env ConfigMap: %v", data)
	}
	if v, _ := nodeLabel(t, dyn, "alpha-1"); v != tf.VrouterEnabled {
		t.Fatalf("node label %s=%q, want %s", tf.VrouterLabel, v, tf.VrouterEnabled)
	}
	specs := guard.calls()
	if len(specs) != 1 || !slices.Equal(specs[0].RemoveLinks, []string{"vhost0"}) || specs[0].Probes.Gateway != "192.168.50.1" ||
		!slices.Equal(specs[0].Probes.Targets, cfg.ProbeTargets) || specs[0].Evictor == nil {
		t.Fatalf("guard calls %+v", specs)
	}
	if s.Vrouter == nil || !s.Vrouter.Confirmed {
		t.Fatalf("status vrouter %+v", s.Vrouter)
	}

	// TF's provisioner registers the control node: peering converges.
	vnc.AddControlNode("alpha-1")
	n = b.Status().Passes
	b.Wake()
	s = waitPass(t, b, n, "ready", func(Status) bool { return true })
	if s.Phase != PhaseReady || s.PeersConfigured != 2 {
		t.Fatalf("phase %s error %q peers %d, want ready with 2", s.Phase, s.Error, s.PeersConfigured)
	}
	checkPeer := func(p site.BGPPeer) {
		t.Helper()
		raw, _, ok := vnc.Router(tf.PeerName(p.Site))
		var params tf.BGPRouterParams
		if !ok || json.Unmarshal(raw, &params) != nil || params.AutonomousSystem != p.ASN || params.Address != p.Address.String() {
			t.Errorf("bgp-router for %s: %s (exists %v)", p.Site, raw, ok)
		}
	}
	checkPeer(beta)
	checkPeer(gamma)
	if _, refs, _ := vnc.Router("alpha-1"); !slices.Equal(refs, []string{"tfsite-beta", "tfsite-gamma"}) {
		t.Fatalf("local control node peers with %v", refs)
	}
	if vnc.ClusterASN() != 64601 {
		t.Fatalf("cluster ASN %d", vnc.ClusterASN())
	}

	// A converged pass writes nothing and does not wrap again.
	vnc.ResetCalls()
	n = b.Status().Passes
	b.Wake()
	s = waitPass(t, b, n, "ready again", func(Status) bool { return true })
	if s.Phase != PhaseReady || vnc.Writes() != 0 || len(guard.calls()) != 1 {
		t.Fatalf("repeat pass: phase %s, %d TF writes (%v), %d guard calls", s.Phase, vnc.Writes(), vnc.Calls(), len(guard.calls()))
	}

	// gamma released its allocation: its bgp-router goes.
	src.set(func(s *source) { s.peers = []site.BGPPeer{beta} })
	n = b.Status().Passes
	b.Wake()
	s = waitPass(t, b, n, "gamma removed", func(Status) bool { return true })
	if _, _, ok := vnc.Router("tfsite-gamma"); ok || s.PeersConfigured != 1 || s.Phase != PhaseReady {
		t.Fatalf("gamma still configured (%v), status %s %q peers %d; routers %v", ok, s.Phase, s.Error, s.PeersConfigured, vnc.Routers())
	}
	checkPeer(beta)

	// The agent is unreachable: the peer list is unknown, so TF's peering
	// stays as it is (an empty list would delete every peer) and the pass waits.
	src.set(func(s *source) { s.peersErr = errors.New("agent down") })
	vnc.ResetCalls()
	n = b.Status().Passes
	b.Wake()
	s2 := waitPass(t, b, n, "peer list unavailable", func(Status) bool { return true })
	if s2.Phase != PhaseWaiting || !strings.Contains(s2.Waiting, "agent down") || vnc.Writes() != 0 {
		t.Fatalf("peer list unavailable: phase %s waiting %q, %d TF writes (%v)", s2.Phase, s2.Waiting, vnc.Writes(), vnc.Calls())
	}
	if _, _, ok := vnc.Router("tfsite-beta"); !ok {
		t.Fatal("beta's bgp-router removed while the peer list was unknown")
	}
	src.set(func(s *source) { s.peersErr = nil })
	n = b.Status().Passes
	b.Wake()
	s = waitPass(t, b, n, "ready after the agent is back", func(Status) bool { return true })
	if s.Phase != PhaseReady || s.PeersConfigured != 1 {
		t.Fatalf("after the agent is back: phase %s %q peers %d", s.Phase, s.Error, s.PeersConfigured)
	}
	want := []string{StepParams, StepImages, StepKubeadm, StepApply, StepCluster, StepVrouter, StepPeering}
	var got []string
	for _, st := range s.Steps {
		got = append(got, st.Name)
		if st.Name == StepCluster {
			// A bare API server: no controller-manager gives the node a pod
			// CIDR; the report says so and the pass goes on.
			if st.OK || !strings.Contains(st.Detail, `not yet: node alpha-1 has no pod CIDR yet`) {
				t.Errorf("cluster step %+v, want not yet: no pod CIDR", st)
			}
			continue
		}
		if !st.OK || st.At.IsZero() {
			t.Errorf("step %+v", st)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}

	// Without a guard, tfsite does not start vrouter on a node.
	createNode(t, dyn, "alpha-2")
	cfg2 := cfg
	cfg2.StateDir = filepath.Join(dir, "bringup-2")
	src2 := &source{ok: true, params: testParams()}
	src2.params.NodeName = "alpha-2"
	b2, err := New(cfg2, src2, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b2.Pass(ctx)
	if s := b2.Status(); s.Phase != PhaseFailed || !strings.Contains(s.Error, "no network guard") {
		t.Fatalf("nil guard: phase %s error %q", s.Phase, s.Error)
	}
	if _, ok := nodeLabel(t, dyn, "alpha-2"); ok {
		t.Fatal("node labelled without a guard")
	}

	// A label that never reached the API server started nothing: no marker,
	// retried next pass.
	cfg3 := cfg
	cfg3.StateDir = filepath.Join(dir, "bringup-3")
	b3, err := New(cfg3, src2, cancelledChangeGuard{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b3.Pass(ctx)
	if s := b3.Status(); s.Phase != PhaseFailed || !strings.Contains(s.Error, "retried next pass") {
		t.Fatalf("failed label: phase %s error %q", s.Phase, s.Error)
	}
	if _, err := os.Stat(filepath.Join(cfg3.StateDir, MarkerFile)); !os.IsNotExist(err) {
		t.Fatalf("marker written although vrouter never started (%v)", err)
	}
}

// cancelledChangeGuard hands the change a cancelled context, so the label
// patch fails, and reverts as netguard does when applying fails.
type cancelledChangeGuard struct{}

func (cancelledChangeGuard) Wrap(ctx context.Context, spec netguard.WrapSpec, change func(context.Context) error) (netguard.Outcome, error) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	out := netguard.Outcome{ID: "test-2", Applied: time.Now()}
	err := change(cctx)
	if err == nil {
		return out, errors.New("the change succeeded with a cancelled context")
	}
	out.Reason = "applying failed: " + err.Error()
	return out, fmt.Errorf("%w: %s", netguard.ErrReverted, out.Reason)
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New(Config{}, &source{}, nil, nil); err == nil || !strings.Contains(err.Error(), "stateDir") {
		t.Fatalf("zero config: %v", err)
	}
	cfg := Default()
	cfg.StateDir = t.TempDir()
	if _, err := New(cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "Source") {
		t.Fatalf("nil source: %v", err)
	}
}

func TestInvalidParamsFailWithEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.StateDir = t.TempDir()
	p := testParams()
	p.Gateway = p.AdvertiseAddress
	p.Pod = netip.Prefix{}
	b, err := New(cfg, &source{ok: true, params: p}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Pass(context.Background())
	s := b.Status()
	if s.Phase != PhaseFailed || !strings.Contains(s.Error, "pod prefix: missing") || !strings.Contains(s.Error, "VROUTER_GATEWAY must be the underlay gateway") {
		t.Fatalf("phase %s error %q", s.Phase, s.Error)
	}
}

// TestRunningStepIsPublished: a long step shows as under way, with the steps
// done before it, and stops showing once it has an outcome or the pass ends.
func TestRunningStepIsPublished(t *testing.T) {
	cfg := Default()
	cfg.StateDir = t.TempDir()
	b, err := New(cfg, &source{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &pass{b: b}
	p.step(StepPreflight, true, "11 checks passed")
	p.running(StepImages)
	s := b.Status()
	if s.Running == nil || s.Running.Name != StepImages || time.Since(s.Running.Since) > time.Minute {
		t.Fatalf("running %+v, want images since just now", s.Running)
	}
	if len(s.Steps) != 1 || s.Steps[0].Name != StepPreflight {
		t.Fatalf("steps %+v, want the preflight done before images", s.Steps)
	}
	if rep := report(s); rep.Running == nil || rep.Running.Name != StepImages || !rep.Running.Since.Equal(s.Running.Since) {
		t.Fatalf("report running %+v", rep.Running)
	}
	p.step(StepImages, true, "imported 7")
	p.running(StepKubeadm)
	if s := b.Status(); s.Running.Name != StepKubeadm || len(s.Steps) != 2 {
		t.Fatalf("after images: running %+v steps %+v", s.Running, s.Steps)
	}
	p.fail(PhaseFailed, StepKubeadm, errors.New("kubeadm init failed"))
	if s := b.Status(); s.Running != nil || s.Phase != PhaseFailed {
		t.Fatalf("after the pass: running %+v phase %s, want nothing running", s.Running, s.Phase)
	}
}

// TestSlowPassStillWaitsTheInterval: a pass longer than Interval (a failed
// kubeadm init and its reset) is followed by Interval of rest, not by a pass
// at once, so its failure stays on show as long as its message says.
func TestSlowPassStillWaitsTheInterval(t *testing.T) {
	cfg := Default()
	cfg.StateDir = t.TempDir()
	cfg.Interval = time.Second
	b, err := New(cfg, &source{slow: 1500 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, b)
	waitPass(t, b, 0, "the first pass", func(Status) bool { return true })
	ended := time.Now()
	waitPass(t, b, 1, "the second pass", func(Status) bool { return true })
	// The second pass took 1.5 s itself; it may not have started before Interval passed.
	if gap := time.Since(ended) - 1500*time.Millisecond; gap < cfg.Interval-50*time.Millisecond {
		t.Fatalf("the next pass started %s after a slow one, want at least Interval (%s)", gap.Round(time.Millisecond), cfg.Interval)
	}
}
