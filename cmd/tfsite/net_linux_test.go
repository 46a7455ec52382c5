package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/recovery/netguard"
)

// runNet runs `tfsite net ARGS...` in-process and returns stdout and the
// exit code main would use.
func runNet(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	out, err := runCmd(t, append([]string{"net"}, args...)...)
	return out, exitCode(err), err
}

func TestNetHelpTeachesExitCodes(t *testing.T) {
	for _, sub := range []string{"try", "guard", "confirm", "rollback", "show", "recover", "oob-up"} {
		out, code, err := runNet(t, sub, "--help")
		if err != nil || code != 0 || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "tfsite net "+sub) {
			t.Errorf("tfsite net %s --help: code %d err %v; help lacks examples or exit codes:\n%s", sub, code, err, out)
		}
	}
}

func TestNetBadInputExitCodes(t *testing.T) {
	dir := t.TempDir()
	state := []string{"--state-dir", filepath.Join(dir, "net"), "--oob-state-dir", filepath.Join(dir, "oob")}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("operations: [{op: flush-everything}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A link no host has: were the plan accepted, validation against the
	// host would still refuse it before anything is applied.
	huge := filepath.Join(dir, "huge.yaml") // a 2 MiB description: over the plan file limit
	if err := os.WriteFile(huge, []byte("description: "+strings.Repeat("x", 2<<20)+"\noperations: [{op: link-up, link: nosuchlink0}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, "long.yaml")
	if err := os.WriteFile(long, []byte("description: "+strings.Repeat("x", 300)+"\noperations: [{op: link-up, link: nosuchlink0}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"try"}, netExitBadInput, "--plan is required"},
		{[]string{"try", "--plan", filepath.Join(dir, "absent.yaml")}, netExitBadInput, "reading plan"},
		{[]string{"try", "--plan", bad}, netExitBadInput, `unknown op "flush-everything"`},
		{[]string{"try", "--plan", bad, "--timeout", "1ms"}, netExitBadInput, `unknown op`},
		{[]string{"try", "--plan", huge}, netExitBadInput, "plan file " + huge + " is larger than 1 MiB, the limit"},
		{[]string{"try", "--plan", long}, netExitBadInput, "description is 300 bytes: at most 256"},
		{[]string{"rollback"}, netExitNothingPending, "nothing pending"},
		{[]string{"confirm"}, netExitNothingPending, "nothing pending"},
		{[]string{"oob-up", "--link", "eth1", "--address", "nope"}, netExitBadInput, "--address"},
		{[]string{"oob-up", "--link", "eth1", "--address", "10.0.0.1/24", "--table", "254"}, netExitBadInput, "table 254"},
	}
	for _, c := range cases {
		_, code, err := runNet(t, append(c.args, state...)...)
		if code != c.code || err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("tfsite net %s: code %d, err %v; want code %d and one line containing %q", strings.Join(c.args, " "), code, err, c.code, c.want)
		}
	}
}

func TestNetGuardRefusesBadRequests(t *testing.T) {
	dir := t.TempDir()
	state := []string{"--state-dir", filepath.Join(dir, "net"), "--oob-state-dir", filepath.Join(dir, "oob")}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"guard", "--request", "../../etc/passwd"}, netExitBadInput, "change id"},
		{[]string{"guard", "--request", "20261125T181000.026Z-4242"}, netExitNothingPending, "no request 20261125T181000.026Z-4242"},
	} {
		_, code, err := runNet(t, append(c.args, state...)...)
		if code != c.code || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tfsite net %s: code %d, err %v; want code %d and %q", strings.Join(c.args, " "), code, err, c.code, c.want)
		}
	}
}

// TestNetGuardRefusesADamagedRequest: the guard tells the waiting foreground
// (through a refusal file) instead of leaving it to time out.
func TestNetGuardRefusesADamagedRequest(t *testing.T) {
	dir := t.TempDir()
	st := netguard.Store{Dir: filepath.Join(dir, "net")}
	id := "20261125T181000.026Z-4242"
	if err := st.Init(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir, "request-"+id+".json"), []byte(`{"version":1,`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, code, err := runNet(t, "guard", "--request", id, "--state-dir", st.Dir, "--oob-state-dir", filepath.Join(dir, "oob"))
	if code != netExitCorrupt || err == nil {
		t.Fatalf("guard over a damaged request: code %d, %v; want %d", code, err, netExitCorrupt)
	}
	g, err := netguard.New(netguard.Config{StateDir: st.Dir, Timeout: 10 * time.Second, Settle: 3 * time.Second, Interval: 250 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Follow(t.Context(), id, "test"); !errors.Is(err, netguard.ErrCorrupt) || !strings.Contains(err.Error(), "request") {
		t.Fatalf("the foreground learns: %v; want the guard's ErrCorrupt refusal", err)
	}
}
