// Package demo runs `make demo`'s script, hack/demo.sh, as an end-to-end test:
// three sites in network namespaces with their own DHCP-served underlays,
// real tfsite agents, real kubeadm dry-runs and real BIRD speakers configured
// from the agents' API. It needs root (testrig.RequireRoot), iproute2,
// dnsmasq-base, bird2, iputils-ping, jq and the kubeadm of make kube-bins.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/internal/testrig"
)

func TestMain(m *testing.M) { testrig.Main(m) }

// result is what hack/demo.sh writes to $RESULT.
type result struct {
	Sites []struct {
		Site            string            `json:"site"`
		ASN             uint32            `json:"asn"`
		Pod             netip.Prefix      `json:"pod"`
		Service         netip.Prefix      `json:"service"`
		Fabric          netip.Prefix      `json:"fabric"`
		UnderlayAddress netip.Prefix      `json:"underlayAddress"`
		Gateway         netip.Addr        `json:"gateway"`
		ExpectGateway   netip.Addr        `json:"expectGateway"`
		Established     int               `json:"established"`
		Learned         []netip.Prefix    `json:"learned"`
		Ping            map[string]string `json:"ping"`
		KubeadmDryRun   string            `json:"kubeadmDryRun"`
	} `json:"sites"`
	Seconds    float64 `json:"seconds"`
	BGPSeconds float64 `json:"bgpSeconds"`
}

type run struct {
	out    string
	err    error
	pid    int
	tmpdir string
}

// runDemo runs hack/demo.sh with extra environment and returns its output.
// The script's work directory goes under a test temp dir, so the test can
// check that the script removed it.
func runDemo(t *testing.T, env ...string) run {
	t.Helper()
	testrig.RequireRoot(t)
	for _, c := range [][2]string{{"ip", "iproute2"}, {"dnsmasq", "dnsmasq-base"}, {"bird", "bird2"}, {"birdc", "bird2"},
		{"ping", "iputils-ping"}, {"jq", "jq"}} {
		testrig.RequireCommand(t, c[0], c[1])
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "..", "hack", "demo.sh")
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	// On timeout the script gets SIGTERM, and its trap tears everything down.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Env = append(os.Environ(), append([]string{"TFSITE=" + testrig.TfsiteBinary(t), "TMPDIR=" + tmp, "TIMEOUT=150"}, env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	t.Logf("hack/demo.sh (%.1fs):\n%s", time.Since(start).Seconds(), out.String())
	return run{out: out.String(), err: err, pid: cmd.Process.Pid, tmpdir: tmp}
}

// checkCleanedUp asserts the script left no namespace, process or file behind.
func checkCleanedUp(t *testing.T, r run) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	prefix := "tfdemo-" + strconv.Itoa(r.pid) + "-"
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix) {
			t.Errorf("namespace left behind: %s", l)
		}
	}
	left, err := os.ReadDir(r.tmpdir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("work directory left behind in %s: %v", r.tmpdir, left)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(r.tmpdir)) {
			t.Errorf("process left running: %s: %s", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

// TestDemo runs the whole demo and checks its outcome independently of the
// script's own checks: three sites with distinct ASNs and disjoint prefixes
// from the default pools, each underlay gateway found by DHCP equal to its
// segment's router, every BGP session Established, every other site's pod
// prefix learned, every pod-to-pod ping answered, and nothing left behind.
func TestDemo(t *testing.T) {
	kubeadm := testrig.KubeBin(t, kube.KubernetesVersion, "kubeadm")
	resFile := filepath.Join(t.TempDir(), "result.json")
	r := runDemo(t, "KUBEADM="+kubeadm, "RESULT="+resFile)
	if r.err != nil {
		t.Fatalf("hack/demo.sh failed: %v", r.err)
	}
	checkCleanedUp(t, r)
	if !strings.Contains(r.out, "demo: OK") || !strings.Contains(r.out, "SITE   ASN") {
		t.Error("no summary table or OK line in the output")
	}
	b, err := os.ReadFile(resFile)
	if err != nil {
		t.Fatal(err)
	}
	var res result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result: %v\n%s", err, b)
	}
	if len(res.Sites) != 3 {
		t.Fatalf("%d sites in the result, want 3", len(res.Sites))
	}
	asns := map[uint32]bool{}
	var prefixes []netip.Prefix
	pods := map[string]netip.Prefix{}
	for _, s := range res.Sites {
		asns[s.ASN] = true
		prefixes = append(prefixes, s.Pod, s.Service, s.Fabric)
		pods[s.Site] = s.Pod
		if s.ASN < 64512 || s.ASN > 65534 {
			t.Errorf("%s: ASN %d outside the default pool 64512-65534", s.Site, s.ASN)
		}
		for _, c := range []struct {
			p    netip.Prefix
			pool string
			bits int
		}{{s.Pod, "10.32.0.0/12", 21}, {s.Service, "10.96.0.0/12", 22}, {s.Fabric, "10.64.0.0/12", 22}} {
			pool := netip.MustParsePrefix(c.pool)
			if !pool.Contains(c.p.Addr()) || c.p.Bits() != c.bits {
				t.Errorf("%s: %v is not a /%d of the default pool %v", s.Site, c.p, c.bits, pool)
			}
		}
		if !s.ExpectGateway.IsValid() || s.Gateway != s.ExpectGateway {
			t.Errorf("%s: discovered gateway %v, its segment's router is %v", s.Site, s.Gateway, s.ExpectGateway)
		}
		if !s.UnderlayAddress.Contains(s.ExpectGateway) || s.UnderlayAddress.Addr() == s.ExpectGateway {
			t.Errorf("%s: underlay address %v is not a lease on the segment of %v", s.Site, s.UnderlayAddress, s.ExpectGateway)
		}
		if s.Established != 2 {
			t.Errorf("%s: %d BGP sessions Established, want 2", s.Site, s.Established)
		}
		if s.KubeadmDryRun != "ok" {
			t.Errorf("%s: kubeadm dry-run %q", s.Site, s.KubeadmDryRun)
		}
		if len(s.Ping) != 2 {
			t.Errorf("%s: pinged %d sites, want 2", s.Site, len(s.Ping))
		}
		for peer, p := range s.Ping {
			if p != "ok" {
				t.Errorf("ping from %s's pod address to %s's: %s", s.Site, peer, p)
			}
		}
	}
	if len(asns) != 3 {
		t.Errorf("ASNs not distinct: %+v", res.Sites)
	}
	for i, a := range prefixes {
		for _, b := range prefixes[i+1:] {
			if a.Overlaps(b) {
				t.Errorf("prefixes %v and %v overlap", a, b)
			}
		}
	}
	for _, s := range res.Sites {
		for name, pod := range pods {
			if name != s.Site && !slices.Contains(s.Learned, pod) {
				t.Errorf("%s did not learn %s's pod prefix %v (learned %v)", s.Site, name, pod, s.Learned)
			}
		}
	}
	t.Logf("demo took %.1fs (BGP converged %.1fs after BIRD started)", res.Seconds, res.BGPSeconds)
}

// TestDemoFailureCleansUp breaks the demo midway (a kubeadm that rejects
// every configuration, after the agents are running) and checks that the
// script exits non-zero naming the failed step and still removes everything.
func TestDemoFailureCleansUp(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "kubeadm")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'kubeadm stand-in: rejecting everything' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := runDemo(t, "KUBEADM="+bad)
	var ee *exec.ExitError
	if r.err == nil || !errors.As(r.err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("demo with a failing kubeadm: %v, want exit status 1", r.err)
	}
	if !strings.Contains(r.out, "demo: FAILED: alpha: kubeadm config validate rejected kubeadm.yaml") {
		t.Error("the failure message does not name the step")
	}
	if !strings.Contains(r.out, "cleaning up") {
		t.Error("no cleanup after the failure")
	}
	checkCleanedUp(t, r)
}
