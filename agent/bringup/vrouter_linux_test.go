package bringup

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/agent/tf/tfcontract"
	"github.com/tfsite/tfsite/internal/testrig"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// nsGuard runs a real netguard.Guard inside the host's namespace (netguard
// works on the calling thread's namespace). bringup makes its API calls from
// fresh goroutines, which never run on that locked thread: the API server
// listens on the root namespace's loopback.
type nsGuard struct {
	g     *netguard.Guard
	ns    *testrig.Netns
	wraps atomic.Int32
}

func (n *nsGuard) Wrap(ctx context.Context, spec netguard.WrapSpec, change func(context.Context) error) (out netguard.Outcome, err error) {
	n.wraps.Add(1)
	if derr := n.ns.Do(func() error { out, err = n.g.Wrap(ctx, spec, change); return nil }); derr != nil {
		return out, derr
	}
	return out, err
}

// watchTakeover plays TF's vrouter DaemonSet: when the node gets the vrouter
// label it takes the host's NIC over (testrig's lockout lab). It reports the
// takeover's error or that the operator was not locked out.
func watchTakeover(ctx context.Context, l *testrig.LockoutLab, dyn dynamic.Interface, node string) <-chan error {
	return watchLabel(ctx, dyn, node, func() error {
		if err := l.Takeover(); err != nil {
			return err
		}
		if l.OperatorReaches(700*time.Millisecond) == nil {
			return errors.New("the operator still reaches the host after the takeover: the emulation does not lock out")
		}
		return nil
	})
}

// watchLabel runs do once the node carries the vrouter label, after a short
// delay (a DaemonSet pod does not start at once), and reports its result.
func watchLabel(ctx context.Context, dyn dynamic.Interface, node string, do func() error) <-chan error {
	res := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				res <- errors.New("the node never got the vrouter label")
				return
			case <-time.After(20 * time.Millisecond):
			}
			n, err := dyn.Resource(nodesGVR).Get(ctx, node, metaGet)
			if err != nil || n.GetLabels()[tf.VrouterLabel] != tf.VrouterEnabled {
				continue
			}
			time.Sleep(500 * time.Millisecond)
			res <- do()
			return
		}
	}()
	return res
}

// vrouterLab is the lockout lab with a real kube-apiserver (node lab-node
// registered), the contract config API and a real netguard working in the
// host's namespace; params describe the host.
type vrouterLab struct {
	lab    *testrig.LockoutLab
	dyn    dynamic.Interface
	vnc    *tfcontract.Server
	cfg    Config
	guard  *nsGuard
	params kube.SiteParams
}

func newVrouterLab(t *testing.T, window, vrouterStart time.Duration) *vrouterLab {
	t.Helper()
	testrig.RequireRoot(t)
	r := &vrouterLab{lab: testrig.NewLockoutLab(t)}
	api := startAPI(t)
	var err error
	if r.dyn, err = dynamic.NewForConfig(api.Config); err != nil {
		t.Fatal(err)
	}
	createNode(t, r.dyn, "lab-node")
	r.vnc = tfcontract.New(t, "lab-node")
	dir := t.TempDir()
	r.cfg = Default()
	r.cfg.StateDir = filepath.Join(dir, "bringup")
	r.cfg.Kubeconfig = filepath.Join(dir, "admin.conf")
	r.cfg.Preflight = false
	r.cfg.ConfigAPI = r.vnc.URL
	r.cfg.GuardWindow, r.cfg.VrouterStart = window, vrouterStart
	r.cfg.ProbeTargets = []string{"icmp:" + testrig.LockoutOperator}
	r.cfg.Interval = time.Hour
	api.WriteKubeconfig(t, r.cfg.Kubeconfig)
	g, err := netguard.New(r.cfg.GuardConfig(filepath.Join(dir, "net")), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	r.guard = &nsGuard{g: g, ns: r.lab.Host}
	r.params = kube.SiteParams{Site: "lab", ASN: 64700, NodeName: "lab-node", PhysicalInterface: "eth0",
		Pod: netip.MustParsePrefix("10.50.0.0/16"), Service: netip.MustParsePrefix("10.51.0.0/16"), Fabric: netip.MustParsePrefix("10.52.0.0/16"),
		AdvertiseAddress: netip.MustParseAddr(testrig.LockoutHost), Gateway: netip.MustParseAddr(testrig.LockoutGateway)}
	return r
}

// TestVrouterTakeoverReverts: bring-up labels the node inside a real netguard
// window, the emulated vrouter takes the NIC with a wrong gateway, the window
// runs out: vrouter is taken off the node (label removed in the API server),
// vhost0 is removed, the operator reaches the host again, the status and a
// durable marker say why, and later passes (also after a restart) leave
// vrouter off.
func TestVrouterTakeoverReverts(t *testing.T) {
	r := newVrouterLab(t, 4*time.Second, 10*time.Second)
	l, dyn, cfg, guard, vnc := r.lab, r.dyn, r.cfg, r.guard, r.vnc
	src := &source{ok: true, params: r.params, peers: []site.BGPPeer{beta}}
	b, err := New(cfg, src, guard, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	took := watchTakeover(ctx, l, dyn, "lab-node")
	start := time.Now()
	b.Pass(ctx)
	elapsed := time.Since(start)
	if err := <-took; err != nil {
		t.Fatal(err)
	}
	s := b.Status()
	markerPath := filepath.Join(cfg.StateDir, MarkerFile)
	t.Logf("pass with guarded vrouter start took %s (window %s); status error: %s", elapsed.Round(time.Millisecond), cfg.GuardWindow, s.Error)
	if s.Phase != PhaseVrouterReverted || !strings.Contains(s.Error, "not healthy within") || !strings.Contains(s.Error, "icmp:"+testrig.LockoutOperator) ||
		!strings.Contains(s.Error, "delete "+markerPath) {
		t.Fatalf("phase %s error %q, want vrouter-reverted with the reason and the marker to delete", s.Phase, s.Error)
	}
	if s.Vrouter == nil || s.Vrouter.Confirmed || !strings.Contains(s.Vrouter.Reason, "vrouter taken off this node") {
		t.Fatalf("status vrouter %+v", s.Vrouter)
	}
	if elapsed > cfg.GuardWindow+5*time.Second {
		t.Fatalf("revert took %s, more than window %s + 5s", elapsed, cfg.GuardWindow)
	}
	if _, ok := nodeLabel(t, dyn, "lab-node"); ok {
		t.Fatal("vrouter label still on the node after the revert")
	}
	if err := l.Host.Command("ip", "link", "show", "vhost0").Run(); err == nil {
		t.Fatal("vhost0 still exists after the revert")
	}
	if err := l.OperatorReaches(time.Second); err != nil {
		t.Fatalf("operator did not regain the host: %v", err)
	}
	m, ok, err := readMarker(markerPath)
	if !ok || err != nil || m.Node != "lab-node" || !strings.Contains(m.Reason, "not healthy within") || m.Change != s.Vrouter.ID {
		t.Fatalf("marker %+v %v %v", m, ok, err)
	}
	if _, _, ok := vnc.Router(tf.PeerName("beta")); ok {
		t.Fatal("peering configured although vrouter was reverted")
	}

	// Later passes, in this process and after a restart, leave vrouter off.
	b.Pass(ctx)
	b2, err := New(cfg, src, guard, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b2.Pass(ctx)
	for i, st := range []Status{b.Status(), b2.Status()} {
		if st.Phase != PhaseVrouterReverted || !strings.Contains(st.Error, m.Reason) {
			t.Errorf("later pass %d: phase %s error %q", i, st.Phase, st.Error)
		}
	}
	if n := guard.wraps.Load(); n != 1 {
		t.Fatalf("guard called %d times, want once: a reverted node must not be relabelled", n)
	}
	if _, ok := nodeLabel(t, dyn, "lab-node"); ok {
		t.Fatal("node relabelled after the revert")
	}
	if _, err := os.Stat(markerPath); err != nil {
		t.Fatal(err)
	}

	// The operator fixed the underlay and deletes the marker: the next pass
	// starts vrouter again, guarded; this time the host stays reachable, the
	// window confirms and peering follows.
	if err := os.Remove(markerPath); err != nil {
		t.Fatal(err)
	}
	good := watchLabel(ctx, dyn, "lab-node", l.GoodTakeover)
	b2.Pass(ctx)
	if err := <-good; err != nil {
		t.Fatal(err)
	}
	s = b2.Status()
	if s.Phase != PhaseReady || s.Vrouter == nil || !s.Vrouter.Confirmed || guard.wraps.Load() != 2 {
		t.Fatalf("retry after deleting the marker: phase %s error %q vrouter %+v wraps %d", s.Phase, s.Error, s.Vrouter, guard.wraps.Load())
	}
	if v, _ := nodeLabel(t, dyn, "lab-node"); v != tf.VrouterEnabled {
		t.Fatalf("node label %q after a confirmed start", v)
	}
	if _, _, ok := vnc.Router(tf.PeerName("beta")); !ok {
		t.Fatal("peering not configured after a confirmed vrouter start")
	}
	if err := l.OperatorReaches(time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestVrouterThatNeverTakesOverIsReverted: the node is labelled but vrouter
// never creates vhost0 within VrouterStart (a crash-looping or unpullable
// image): the guard reverts, the label is removed, and the status says what
// to check, instead of leaving a vrouter that may take the NIC later
// scheduled outside any guarded window.
func TestVrouterThatNeverTakesOverIsReverted(t *testing.T) {
	r := newVrouterLab(t, 3*time.Second, time.Second)
	b, err := New(r.cfg, &source{ok: true, params: r.params}, r.guard, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l, dyn := r.lab, r.dyn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.Pass(ctx)
	s := b.Status()
	if s.Phase != PhaseVrouterReverted || !strings.Contains(s.Error, "did not take eth0 over (no vhost0) within 1s") {
		t.Fatalf("phase %s error %q", s.Phase, s.Error)
	}
	if _, ok := nodeLabel(t, dyn, "lab-node"); ok {
		t.Fatal("vrouter label left on the node although vrouter never took over")
	}
	if err := l.OperatorReaches(time.Second); err != nil {
		t.Fatal(err)
	}
}
