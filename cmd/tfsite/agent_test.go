package main

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent"
	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
)

// runCmd and exitCode are shared with the other command tests (render_test.go).

func TestAgentCommandsHelpTeaches(t *testing.T) {
	for _, args := range [][]string{{"agent"}, {"status"}, {"peers"}, {"site", "release"}} {
		out, err := runCmd(t, append(args, "--help")...)
		if err != nil {
			t.Fatalf("%v --help: %v", args, err)
		}
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "Exit codes:") {
			t.Errorf("%v --help lacks examples or exit codes:\n%s", args, out)
		}
	}
}

func TestAgentInvalidConfigExitsTwo(t *testing.T) {
	_, err := runCmd(t, "agent", "--cmdline", "", "--nocloud", "off", "--platform", "none", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil {
		t.Fatal("missing --config file accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("site: Bad\nvoters: []\n"), 0o644)
	_, err = runCmd(t, "agent", "--cmdline", "", "--nocloud", "off", "--platform", "none", "--config", bad, "--metrics", "off")
	if exitCode(err) != exitBadConfig || !strings.Contains(err.Error(), "site:") || !strings.Contains(err.Error(), "voters:") {
		t.Fatalf("invalid config: exit %d, %v", exitCode(err), err)
	}
	// No gossip key and no insecure: true: refused, naming both fixes.
	nokey := filepath.Join(t.TempDir(), "nokey.yaml")
	os.WriteFile(nokey, []byte("site: a\nvoters: [a]\n"), 0o644)
	_, err = runCmd(t, "agent", "--cmdline", "", "--nocloud", "off", "--platform", "none", "--config", nokey, "--metrics", "off")
	if exitCode(err) != exitBadConfig || !strings.Contains(err.Error(), "gossip.key: none configured") || !strings.Contains(err.Error(), "insecure: true") {
		t.Fatalf("config without a key: exit %d, %v", exitCode(err), err)
	}
}

func TestStatusPeersReleaseAgainstAgent(t *testing.T) {
	dir, err := os.MkdirTemp("", "tfsc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "api.sock")
	if _, err := runCmd(t, "status", "--socket", sock); exitCode(err) != exitAgentDown {
		t.Fatalf("status without agent: exit %d, %v", exitCode(err), err)
	}
	c := config.Default()
	c.Site, c.Voters = "cli-a", []string{"cli-a"}
	c.Gossip.BindAddress = fmt.Sprintf("127.%d.%d.1", 100+rand.N(100), rand.N(250))
	c.Gossip.Profile = "local"
	c.StateDir, c.APISocket, c.MetricsAddress = filepath.Join(dir, "state"), sock, ""
	c.Underlay.Disabled = true
	key := make([]byte, 32)
	crand.Read(key)
	c.Gossip.Key = base64.StdEncoding.EncodeToString(key)
	a, err := agent.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done; a.Close() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := runCmd(t, "status", "--socket", sock, "--allocated")
		if err == nil {
			break
		}
		if code := exitCode(err); code != exitNotAllocated || time.Now().After(deadline) {
			t.Fatalf("status --allocated: exit %d, %v", code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, err := runCmd(t, "status", "--socket", sock, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Site != "cli-a" || st.Allocation == nil || st.Allocation.ASN == 0 {
		t.Fatalf("status --json = %q (%v)", out, err)
	}
	out, err = runCmd(t, "status", "--socket", sock)
	if err != nil || !strings.Contains(out, fmt.Sprint(st.Allocation.ASN)) || !strings.Contains(out, "peers (0)") {
		t.Fatalf("status table = %q (%v)", out, err)
	}
	// render --socket takes the allocation from the agent; with discovery off
	// the gossip address stands in for the node address, flags fill the rest.
	rendered := filepath.Join(dir, "render")
	if _, err := runCmd(t, "render", "--socket", sock, "--gateway", "192.0.2.1", "--interface", "eth9", "--out", rendered); err != nil {
		t.Fatalf("render --socket: %v", err)
	}
	tfYAML, _ := os.ReadFile(filepath.Join(rendered, "tf.yaml"))
	if !strings.Contains(string(tfYAML), fmt.Sprintf("BGP_ASN: \"%d\"", st.Allocation.ASN)) || !strings.Contains(string(tfYAML), c.Gossip.BindAddress) {
		t.Fatalf("render --socket: tf.yaml lacks the agent's ASN %d or its address %s:\n%s", st.Allocation.ASN, c.Gossip.BindAddress, tfYAML)
	}
	if out, err = runCmd(t, "peers", "--socket", sock, "--json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("peers --json = %q (%v)", out, err)
	}
	if _, err := runCmd(t, "site", "release", "ghost", "--socket", sock); exitCode(err) != exitNotFound {
		t.Errorf("release unknown: exit %d, %v", exitCode(err), err)
	}
	if _, err := runCmd(t, "site", "release", "cli-a", "--socket", sock); exitCode(err) != exitRefused {
		t.Errorf("release self: exit %d, %v", exitCode(err), err)
	}
}
