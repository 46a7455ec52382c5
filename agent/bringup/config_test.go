package bringup

import (
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/recovery/netguard"
)

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Config{
		StateDir: "rel", Kubeconfig: "", Kubeadm: "", KubeadmEnv: []string{"NOEQUALS"},
		ConfigAPI: "ftp://x", GuardWindow: 10 * time.Millisecond, ProbeTargets: []string{"icmp:nope", "tcp:10.0.0.1:0"},
		Interval: 0, Preflight: true, PreflightConfig: kube.PreflightConfig{MinKernel: "five", CRISocket: "tcp://x"},
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"stateDir \"rel\"", "kubeconfig \"\"", "kubeadm:", "kubeadmEnv \"NOEQUALS\"", "configAPI \"ftp://x\"",
		"guardWindow 10ms", `probe target "icmp:nope"`, `probe target "tcp:10.0.0.1:0"`, "interval 0s", `min-kernel "five"`, `cri-socket "tcp://x"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestPreflightConfigFillsFromDefaults(t *testing.T) {
	c := Default()
	c.Kubeadm = "/opt/kubeadm"
	if p := c.preflightConfig(); p.Kubeadm != "/opt/kubeadm" || p.MinMemory != kube.DefaultPreflightConfig().MinMemory {
		t.Fatalf("zero value: %+v", p)
	}
	c.PreflightConfig = kube.PreflightConfig{Root: "/fixture", MinMemory: kube.GiB}
	p := c.preflightConfig()
	if p.Root != "/fixture" || p.MinMemory != kube.GiB || p.MinCPUs != 0 || p.DiskFree == nil || p.Version == nil ||
		p.Kubeadm != "/opt/kubeadm" || p.CRISocket != kube.DefaultCRISocket || len(p.Matrix.Releases) == 0 {
		t.Fatalf("partial config not filled: %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestGuardConfigMatchesWindow(t *testing.T) {
	for _, w := range []time.Duration{time.Second, 4 * time.Second, 10 * time.Second, time.Minute} {
		c := Default()
		c.GuardWindow = w
		g := c.GuardConfig(t.TempDir())
		if g.Timeout != w {
			t.Errorf("window %s: timeout %s", w, g.Timeout)
		}
		if _, err := netguard.New(g, nil); err != nil {
			t.Errorf("window %s: %v", w, err)
		}
	}
}

func TestConfigAPIEndpoint(t *testing.T) {
	p := testParams()
	if got := Default().ConfigAPIEndpoint(p); got != "http://192.168.50.10:8082" {
		t.Fatalf("default endpoint %q", got)
	}
	c := Default()
	c.ConfigAPI = "http://10.1.1.1:9999"
	if got := c.ConfigAPIEndpoint(p); got != c.ConfigAPI {
		t.Fatalf("explicit endpoint %q", got)
	}
}
