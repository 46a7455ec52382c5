package bringup

import (
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/config"
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
	for _, want := range []string{"stateDir \"rel\"", `kubeconfig: "" must be`, "kubeadm: empty", "kubeadmEnv \"NOEQUALS\"", `configAPI: "ftp://x"`,
		"guardWindow: 10ms", `probeTargets[0]: probe target "icmp:nope"`, `probeTargets[1]: probe target "tcp:10.0.0.1:0"`, "interval: 0s", `min-kernel "five"`, `cri-socket "tcp://x"`} {
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

// The site config's bringUp section and the bring-up process's Config are
// checked by one set of rules: a value one accepts, the other accepts too,
// and a value one refuses, the other refuses for the same field.
func TestConfigSectionAndConfigAgree(t *testing.T) {
	for _, tc := range []struct {
		yaml  string
		field string // "" for valid
	}{
		{"guardWindow: 999ms", "guardWindow"},
		{"guardWindow: 1s", ""},
		{"guardWindow: 1h", ""},
		{"guardWindow: 61m", "guardWindow"},
		{"vrouterStart: 0s", ""},
		{"vrouterStart: 24h", ""},
		{"vrouterStart: 25h", "vrouterStart"},
		{"interval: 999ms", "interval"},
		{"interval: 1s", ""},
		{"kubeadmArgs: [--v=5, --config=/x]", "kubeadmArgs[1]"},
		{"kubeadmArgs: [--v=5]", ""},
		{"configAPI: ftp://x", "configAPI"},
		{"configAPI: http://10.0.0.1:8082", ""},
		{"kubeconfig: admin.conf", "kubeconfig"},
		{`kubeadm: " "`, "kubeadm"},
		{"probeTargets: [icmp:10.0.0.1, tcp:10.0.0.1:0]", "probeTargets[1]"},
	} {
		c, err := config.Parse([]byte("bringUp:\n  " + tc.yaml + "\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		secErr, cfgErr := c.BringUp.Validate(), FromConfig(c).Validate()
		if tc.field == "" {
			if secErr != nil || cfgErr != nil {
				t.Errorf("%s: want valid; section: %v; bring-up: %v", tc.yaml, secErr, cfgErr)
			}
			continue
		}
		if secErr == nil || !strings.Contains(secErr.Error(), "bringUp."+tc.field+":") {
			t.Errorf("%s: section: want an error naming bringUp.%s, got %v", tc.yaml, tc.field, secErr)
		}
		if cfgErr == nil || !strings.Contains(cfgErr.Error(), "bringup: "+tc.field+":") {
			t.Errorf("%s: bring-up: want an error naming %s, got %v", tc.yaml, tc.field, cfgErr)
		}
	}
}
