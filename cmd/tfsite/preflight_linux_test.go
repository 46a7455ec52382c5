package main

import (
	"encoding/json"
	"testing"

	"github.com/tfsite/tfsite/agent/kube"
)

func TestPreflightCommand(t *testing.T) {
	if _, err := runCmd(t, "preflight", "--min-memory", "lots"); exitCode(err) != exitPreflightUsage {
		t.Fatalf("bad size: %v", err)
	}
	if _, err := runCmd(t, "preflight", "--tf-release", "R99"); exitCode(err) != exitPreflightUsage {
		t.Fatalf("unknown release: %v", err)
	}
	// On this host some checks may fail (exit 1); the JSON report must still be complete.
	out, err := runCmd(t, "preflight", "--json", "--min-memory", "1Mi", "--min-disk", "1M", "--min-cpus", "1")
	if c := exitCode(err); c != 0 && c != exitPreflightFailed {
		t.Fatalf("exit %d: %v", c, err)
	}
	var r kube.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Checks) != 11 {
		t.Fatalf("report %q: %v", out, err)
	}
	for _, c := range r.Checks {
		if (c.Name == "memory" || c.Name == "cpus") && c.Status != kube.StatusOK {
			t.Errorf("lowered threshold still fails: %+v", c)
		}
	}
	if r.Passed != (err == nil) {
		t.Fatalf("passed=%v but exit error %v", r.Passed, err)
	}
}
