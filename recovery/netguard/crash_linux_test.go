package netguard

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
	"github.com/tfsite/tfsite/recovery/oob"
)

func TestMain(m *testing.M) { testrig.Main(m) }

type cli struct {
	t                  testing.TB
	bin, state, oobDir string
	ns                 *testrig.Netns
}

func (c cli) command(args ...string) *exec.Cmd {
	args = append(args, "--state-dir", c.state, "--oob-state-dir", c.oobDir)
	return c.ns.Command(append([]string{c.bin, "net"}, args...)...)
}

// run returns combined output and the exit code.
func (c cli) run(args ...string) (string, int) {
	c.t.Helper()
	var out bytes.Buffer
	cmd := c.command(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	c.t.Fatalf("running tfsite net %v: %v", args, err)
	return "", -1
}

func newCLI(t testing.TB, ns *testrig.Netns) cli {
	dir := t.TempDir()
	return cli{t: t, bin: testrig.TfsiteBinary(t), state: filepath.Join(dir, "net"), oobDir: filepath.Join(dir, "oob"), ns: ns}
}

// TestCrashDuringTryIsRecovered kills `tfsite net try` with SIGKILL in its
// window: its guard process keeps the window. Then the guard is killed too,
// and `tfsite net recover` must restore the snapshot exactly. On the way it
// checks that a second try is refused naming the first.
func TestCrashDuringTryIsRecovered(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	l := newLab(t)
	c := newCLI(t, l.host)
	before := snapshotIn(t, l.host)
	try, planFile := startTakeover(t, l, c, "60s")
	st := Store{Dir: c.state}

	// A concurrent try is refused and names the pending change.
	out, code := c.run("try", "--plan", planFile)
	if code != 4 || !strings.Contains(out, "VROUTER_GATEWAY") || !strings.Contains(out, "tfsite net rollback") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("concurrent try: exit %d, %q; want exit 4, one line naming the pending change", code, out)
	}
	// recover refuses while the guarding process lives.
	if out, code := c.run("recover"); code != 4 {
		t.Fatalf("recover during a live try: exit %d %q, want 4", code, out)
	}

	if err := try.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = try.Wait()
	// The window belongs to the guard process, not to the killed foreground.
	if out, code := c.run("recover"); code != 4 {
		t.Fatalf("recover after the foreground was killed: exit %d %q, want 4 (the guard process still holds the window)", code, out)
	}
	killGuard(t, st)
	if d := before.Diff(snapshotIn(t, l.host)); len(d) == 0 {
		t.Fatal("the killed try left nothing changed: the crash test does not test anything")
	}
	p, err := st.Pending()
	if err != nil {
		t.Fatalf("no pending record after the crash: %v", err)
	}
	// Nothing else may start over a dead process's change.
	if out, code := c.run("try", "--plan", planFile); code != 4 || !strings.Contains(out, "tfsite net recover") {
		t.Fatalf("try over a crashed change: exit %d %q", code, out)
	}
	out, code = c.run("recover")
	if code != 0 || !strings.Contains(out, "reverted "+p.ID) {
		t.Fatalf("recover: exit %d %q", code, out)
	}
	if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
		t.Fatalf("recover did not restore the snapshot exactly:\n%s", strings.Join(d, "\n"))
	}
	if err := l.operatorReaches(time.Second); err != nil {
		t.Fatal(err)
	}
	ev, err := st.Events()
	if err != nil {
		t.Fatal(err)
	}
	if last := ev[len(ev)-1]; last.Event != EventReverted || !strings.Contains(last.Reason, "ended before confirming") {
		t.Fatalf("journal %+v", last)
	}
	if out, code := c.run("recover"); code != 0 || !strings.Contains(out, "nothing pending") {
		t.Fatalf("second recover: exit %d %q", code, out)
	}
	if out, code := c.run("rollback"); code != 5 || !strings.Contains(out, "nothing pending") {
		t.Fatalf("rollback with nothing pending: exit %d %q", code, out)
	}
}

// TestCLITryRollbackShowAndCorruptJournal drives the binary: try + rollback
// from a second process, show, and a corrupt journal refusing a try.
func TestCLITryRollbackShowAndCorruptJournal(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	l := newLab(t)
	c := newCLI(t, l.host)
	planFile := filepath.Join(t.TempDir(), "mtu.yaml")
	if err := os.WriteFile(planFile, []byte("description: jumbo\noperations: [{op: set-mtu, link: eth0, mtu: 1400}]\nprobes: {gateway: none}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshotIn(t, l.host)
	try := c.command("try", "--plan", planFile, "--timeout", "30s", "--settle", "20s", "--target", "tcp:10.9.0.2:6443")
	var tryOut testrig.Buffer
	try.Stdout, try.Stderr = &tryOut, &tryOut
	if err := try.Start(); err != nil {
		t.Fatal(err)
	}
	// Applied, not only pending: the record is written before the plan is.
	waitApplied(t, Store{Dir: c.state}, tryOut.String)
	if out, code := c.run("show"); code != 0 || !strings.Contains(out, "pending: ") || !strings.Contains(out, `"jumbo"`) || !strings.Contains(out, "mtu 1400") {
		t.Fatalf("show: exit %d\n%s", code, out)
	}
	out, code := c.run("rollback")
	if code != 0 || !strings.Contains(out, "reverted") {
		t.Fatalf("rollback: exit %d %q", code, out)
	}
	err := try.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(tryOut.String(), "rolled back by operator") {
		t.Fatalf("try after rollback: %v, %s", err, tryOut.String())
	}
	if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
		t.Fatalf("rollback not exact: %v", d)
	}
	// A corrupt journal: clear error, nothing applied.
	if err := os.WriteFile(filepath.Join(c.state, journalFile), []byte("{\"version\":1,"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = c.run("try", "--plan", planFile)
	if code != 6 || !strings.Contains(out, journalFile) || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("try with corrupt journal: exit %d %q", code, out)
	}
	if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
		t.Fatalf("something was applied: %v", d)
	}
	if out, code := c.run("show", "--json"); code != 0 || !strings.Contains(out, `"errors"`) {
		t.Fatalf("show --json with a corrupt journal: exit %d %q", code, out)
	}
	if err := os.Remove(filepath.Join(c.state, journalFile)); err != nil {
		t.Fatal(err)
	}
	// With eth0's address reserved for management, a plan taking it away
	// is refused before anything changes.
	res := &oob.Reservation{Link: "eth0", Address: netip.MustParsePrefix(hostAddr + "/24"), Table: 200, Priority: 1000, Mode: oob.ModeRule}
	if err := oob.Save(c.oobDir, res); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(planFile, []byte("operations: [{op: set-addresses, link: eth0, addresses: [10.0.0.11/24]}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = c.run("try", "--plan", planFile)
	if code != 2 || !strings.Contains(out, "would remove management address 10.0.0.10/24 from eth0") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("plan removing the management address: exit %d %q", code, out)
	}
	if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
		t.Fatalf("something was applied: %v", d)
	}
}

// takeoverPlanFile writes the lab's takeover plan (TF's vhost0 with the
// master as gateway) to a file and returns its path.
func takeoverPlanFile(t testing.TB) string {
	t.Helper()
	planFile := filepath.Join(t.TempDir(), "takeover.yaml")
	if err := os.WriteFile(planFile, []byte(labTakeoverPlan), 0o600); err != nil {
		t.Fatal(err)
	}
	return planFile
}

// startTakeover starts `tfsite net try` of the takeover plan with timeout,
// waits until the plan is applied and the operator is locked out, and
// returns the running try (its output is shown when it never applies) and
// the plan file.
func startTakeover(t *testing.T, l *lab, c cli, timeout string) (*exec.Cmd, string) {
	t.Helper()
	planFile := takeoverPlanFile(t)
	try := c.command("try", "--plan", planFile, "--timeout", timeout)
	var out testrig.Buffer
	try.Stdout, try.Stderr = &out, &out
	if err := try.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = try.Process.Kill(); _ = try.Wait() })
	waitApplied(t, Store{Dir: c.state}, out.String)
	l.waitLockedOut(t, 3*time.Second)
	return try, planFile
}

// killGuard kills the process guarding the pending change with SIGKILL and
// waits until the kernel has dropped its lock.
func killGuard(t testing.TB, st Store) *Pending {
	t.Helper()
	p, err := st.Pending()
	if err != nil {
		t.Fatalf("no pending change to kill the guard of: %v", err)
	}
	if p.PID == os.Getpid() {
		t.Fatalf("pending change %s is guarded by the test process itself", p.ID)
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("killing guard process %d: %v", p.PID, err)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if lock, err := st.TryLock(); err == nil {
			lock.Unlock()
			return p
		}
	}
	t.Fatalf("guard process %d still holds the lock 5 s after SIGKILL", p.PID)
	return nil
}

// TestDamagedRecordAfterCrash damages the record a killed guard left (cut
// short in the plan, as a disk fault might): `recover` names the file and
// the fix and changes nothing; `recover --salvage` (the boot unit's) still
// restores the snapshot exactly. A record without a readable snapshot
// reverts nothing and says what the operator can do.
func TestDamagedRecordAfterCrash(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	l := newLab(t)
	c := newCLI(t, l.host)
	before := snapshotIn(t, l.host)
	st := Store{Dir: c.state}
	try, planFile := startTakeover(t, l, c, "60s")
	_ = try.Process.Kill()
	_ = try.Wait()
	killGuard(t, st)

	path := filepath.Join(c.state, pendingFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.Index(data, []byte(`"plan": `))
	if cut < 0 {
		t.Fatalf("pending record without a plan: %s", data)
	}
	if err := os.WriteFile(path, data[:cut+30], 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := c.run("recover")
	if code != 6 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, path) || !strings.Contains(out, "tfsite net recover --salvage") {
		t.Fatalf("recover of a damaged record: exit %d %q; want exit 6, one line naming the file and the fix", code, out)
	}
	if err := l.operatorReaches(time.Second); err == nil {
		t.Fatal("recover without --salvage reverted the change")
	}
	if out, code := c.run("try", "--plan", planFile); code != 6 || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("try over a damaged record: exit %d %q, want 6", code, out)
	}
	out, code = c.run("recover", "--salvage")
	if code != 0 || !strings.Contains(out, "reverted ") {
		t.Fatalf("recover --salvage: exit %d %q", code, out)
	}
	if err := l.operatorReaches(time.Second); err != nil {
		t.Fatalf("after recover --salvage: %v", err)
	}
	if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
		t.Fatalf("the salvaged revert is not exact:\n%s", strings.Join(d, "\n"))
	}
	if aside, _ := filepath.Glob(path + ".damaged-*"); len(aside) != 1 {
		t.Fatalf("damaged record moved aside to %v, want one file", aside)
	}
	ev, err := st.Events()
	if err != nil {
		t.Fatal(err)
	}
	if last := ev[len(ev)-1]; last.Event != EventReverted || !strings.Contains(last.Reason, "salvaged from a damaged record") {
		t.Fatalf("journal's last event %+v", last)
	}

	// Nothing readable: nothing reverted, the way out on one line, the file kept.
	if err := os.WriteFile(path, []byte(`{"version":1,"id":"x","snapshot":{"li`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = c.run("recover", "--salvage")
	if code != 6 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, path) ||
		!strings.Contains(out, "nothing was reverted") || !strings.Contains(out, "Reset underlay to DHCP") || !strings.Contains(out, "mv "+path) {
		t.Fatalf("recover --salvage of a record with no snapshot: exit %d %q", code, out)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the unreadable record was not kept: %v", err)
	}
}
