package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

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

func TestAgentFlagsOverrideSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	os.WriteFile(file, []byte("site: from-file\nvoters: [from-file]\nstateDir: /srv/x\n"), 0o644)
	cmdline := filepath.Join(dir, "cmdline")
	os.WriteFile(cmdline, []byte("tfsite.site=from-cmdline tfsite.seeds=10.0.0.9\n"), 0o644)
	cmd := newAgentCmd()
	if err := cmd.ParseFlags([]string{"--config", file, "--cmdline", cmdline, "--nocloud", "off", "--site", "from-flag", "--voters", "a,b", "--no-underlay", "--socket", "/tmp/x.sock"}); err != nil {
		t.Fatal(err)
	}
	f := flagsOf(t, cmd)
	l, err := f.load(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.Site != "from-flag" || strings.Join(c.Voters, ",") != "a,b" || c.StateDir != "/srv/x" || c.Gossip.Seeds[0] != "10.0.0.9" || !c.Underlay.Disabled || c.APISocket != "/tmp/x.sock" {
		t.Fatalf("layered config = %+v", c)
	}
	if got := strings.Join(l.Applied, ";"); !strings.Contains(got, "file") || !strings.Contains(got, "cmdline") || !strings.HasSuffix(got, "flags") {
		t.Errorf("sources = %q", got)
	}
}

// flagsOf reads the parsed flags back into agentFlags, as RunE would see them.
func flagsOf(t *testing.T, cmd *cobra.Command) agentFlags {
	t.Helper()
	fl := cmd.Flags()
	get := func(name string) string { v, _ := fl.GetString(name); return v }
	list := func(name string) []string { v, _ := fl.GetStringSlice(name); return v }
	nu, _ := fl.GetBool("no-underlay")
	return agentFlags{
		configFile: get("config"), cmdline: get("cmdline"), nocloud: get("nocloud"), logLevel: get("log-level"),
		site: get("site"), bind: get("bind"), advertise: get("advertise"), keyFile: get("key-file"),
		stateDir: get("state-dir"), socket: get("socket"), metrics: get("metrics"), profile: get("gossip-profile"),
		seeds: list("seeds"), voters: list("voters"), noUnderlay: nu,
	}
}

func TestAgentInvalidConfigExitsTwo(t *testing.T) {
	_, err := runCmd(t, "agent", "--cmdline", "", "--nocloud", "off", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil {
		t.Fatal("missing --config file accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("site: Bad\nvoters: []\n"), 0o644)
	_, err = runCmd(t, "agent", "--cmdline", "", "--nocloud", "off", "--config", bad, "--metrics", "off")
	if exitCode(err) != exitBadConfig || !strings.Contains(err.Error(), "site:") || !strings.Contains(err.Error(), "voters:") {
		t.Fatalf("invalid config: exit %d, %v", exitCode(err), err)
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
