package config

import (
	"strings"
	"testing"
)

func TestBringUpDefaultsAreValidAndOff(t *testing.T) {
	b := Default().BringUp
	if b.Enabled {
		t.Fatal("bring-up must be off unless turned on (labs, demo, benchmarks)")
	}
	if errs := b.validate(); len(errs) != 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
}

func TestBringUpValidateReportsEveryProblem(t *testing.T) {
	c, err := Parse([]byte(`
bringUp:
  enabled: true
  kubeconfig: admin.conf
  kubeadm: " "
  kubeadmArgs: [--dry-run, --config=/x]
  configAPI: "ftp://x"
  guardWindow: 10ms
  interval: 0s
  probeTargets: [icmp:10.0.0.1, "udp:1.2.3.4:5"]
  preflight: {minCPUs: -1}
`))
	if err != nil {
		t.Fatal(err)
	}
	errs := c.BringUp.validate()
	msg := ""
	for _, e := range errs {
		msg += e.Error() + "\n"
	}
	for _, want := range []string{"bringUp.kubeconfig", "bringUp.kubeadm:", "bringUp.kubeadmArgs[1]", "bringUp.configAPI",
		"bringUp.guardWindow", "bringUp.interval", "bringUp.probeTargets[1]", "bringUp.preflight.minCPUs"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %s in:\n%s", want, msg)
		}
	}
	if len(errs) != 8 {
		t.Errorf("%d problems, want 8 (one line each):\n%s", len(errs), msg)
	}
	// And through the whole config's Validate.
	c.Site, c.Voters = "a", []string{"a"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "bringUp.guardWindow") {
		t.Fatalf("Validate: %v", err)
	}
}
