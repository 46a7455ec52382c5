package console

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/passhash"
	"github.com/tfsite/tfsite/internal/testrig"
)

// TestConsoleWithoutPasswordOffersRecoveryOnly: first boot, no recovery
// password anywhere. Nobody gets to set one or reach a shell from the
// terminal; status and network recovery still work.
func TestConsoleWithoutPasswordOffersRecoveryOnly(t *testing.T) {
	testrig.RequireRoot(t)
	host := testrig.NewNetns(t, "conn")
	var journal testrig.SyncBuffer
	r := startConsole(t, host, rigOptions{log: &journal})
	tm := r.tm
	tm.Expect("No recovery password is set: entries marked * stay closed")
	tm.Expect("Enter a number: ")
	if tr := tm.Transcript(); strings.Contains(tr, "New recovery password") {
		t.Fatalf("the console offered to set a password at start:\n%s", tr)
	}
	for _, e := range []struct{ key, label string }{{"10", "Shell"}, {"8", "Set the console password"},
		{"7", "Add an SSH authorized key"}, {"5", "Static address/gateway"}, {"11", "Reboot"}} {
		tm.Send(e.key)
		shown := oneline.Of(tm.Expect("Press Enter"))
		if !strings.Contains(shown, "no recovery password is set: "+e.label+" stays closed until one is; set console.passwordHash in the configuration") ||
			strings.Contains(shown, "password: ") {
			t.Fatalf("entry %s shows %q, want a refusal without asking for a password", e.key, shown)
		}
		tm.Send("")
		tm.Expect("Enter a number: ")
	}
	tm.Send("echo shell-$((40+2))") // were a shell running, it would answer
	tm.Expect(`No entry "echo shell-$((40+2))"`)
	tm.Send("")

	tm.Send("1")
	tm.Expect("site     lab-a")
	tm.Expect("last network event")
	tm.Send("")
	tm.Send("3")
	tm.Expect("No recovery password is set: network recovery runs without one.")
	tm.Expect("Nothing pending")
	tm.Send("")
	tm.Send("0")
	tm.Expect("Bye.")
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	tr := tm.Transcript()
	for _, never := range []string{"shell-42", "Starting /bin/sh", "Recovery password set", "New recovery password", "Rebooting"} {
		if strings.Contains(tr, never) {
			t.Errorf("the terminal shows %q", never)
		}
	}
	for _, f := range []string{r.cfg.PasswordFile, r.cfg.AuthorizedKeys, r.rebooted} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s exists: a closed entry ran (%v)", f, err)
		}
	}
	if j := journal.String(); !strings.Contains(j, `msg="console: entry refused, no recovery password set" tty=pts-test entry=Shell`) ||
		!strings.Contains(j, `msg="console: network recovery without a recovery password"`) {
		t.Errorf("journal lacks the refusal or the recovery:\n%s", j)
	}
}

// TestConsoleWrongPasswordsDelayThenLockOut: each wrong password makes the
// next try wait longer (1, 2, 4, 8 s), the fifth locks every console for
// 5 minutes, a restarted console is still locked, and the journal has each.
func TestConsoleWrongPasswordsDelayThenLockOut(t *testing.T) {
	var journal testrig.SyncBuffer
	r := startConsole(t, nil, rigOptions{configured: "correct-horse", log: &journal})
	tm := r.tm
	tm.Expect("Enter a number: ")
	next := []string{"1s", "2s", "4s", "8s"}
	for i := 1; i <= 5; i++ {
		tm.Send("10")
		if i > 1 {
			tm.Expect(fmt.Sprintf("Waiting %s after %d wrong passwords...", next[i-2], i-1))
		}
		tm.Expect("Recovery password: ")
		tm.Send(fmt.Sprintf("wrong-%d-password", i))
		if i < 5 {
			tm.Expect(fmt.Sprintf("wrong recovery password: nothing was done (%d wrong in a row; next try in %s)", i, next[i-1]))
		} else {
			tm.Expect("wrong recovery password: nothing was done (5 wrong in a row: locked for 5m0s)")
		}
		tm.Send("")
	}
	if got, want := r.clock.sleeps(), []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("the console waited %v before the tries, want %v", got, want)
	}
	// Locked: not even asked, the right password included.
	tm.Send("10")
	tm.Expect("== Shell ==")
	if shown := oneline.Of(tm.Expect("Press Enter")); !strings.Contains(shown, "locked after wrong recovery passwords: nothing was done: 5 wrong in a row; try again in 5m0s") ||
		strings.Contains(shown, "password: ") {
		t.Fatalf("entry 10 while locked shows %q, want a refusal without asking", shown)
	}
	tm.Send("")
	tm.Send("0")
	tm.Expect("Bye.")
	<-r.done

	// A new console on the same state, 4 minutes on: still locked.
	r.clock.advance(4 * time.Minute)
	r2 := startConsole(t, nil, rigOptions{configured: "correct-horse", log: &journal, dir: r.dir, clock: r.clock})
	r2.tm.Expect("Enter a number: ")
	r2.tm.Send("10")
	r2.tm.Expect("== Shell ==")
	if shown := oneline.Of(r2.tm.Expect("Press Enter")); !strings.Contains(shown, "5 wrong in a row; try again in 1m0s") ||
		strings.Contains(shown, "password: ") {
		t.Fatalf("entry 10 on the restarted console shows %q, want still locked", shown)
	}
	r2.tm.Send("")
	r2.clock.advance(time.Minute)
	useShell(r2.tm, "correct-horse")
	if _, err := os.Stat(r.cfg.LockoutFile); !os.IsNotExist(err) {
		t.Errorf("the right password left the lockout file: %v", err)
	}

	j := journal.String()
	for i := 1; i <= 4; i++ {
		want := fmt.Sprintf(`level=WARN msg="console: wrong recovery password" tty=pts-test failures=%d nextTryIn=%s`, i, next[i-1])
		if !strings.Contains(j, want) {
			t.Errorf("journal lacks %s", want)
		}
	}
	for _, want := range []string{
		`level=ERROR msg="console: locked after wrong recovery passwords" tty=pts-test failures=5 lockedFor=5m0s until=2030-01-01T00:05:15.000Z`,
		`level=INFO msg="console: recovery password accepted after wrong ones" tty=pts-test failures=5`,
	} {
		if !strings.Contains(j, want) {
			t.Errorf("journal lacks %s:\n%s", want, j)
		}
	}
}

// TestConsoleUpgradesLegacyHashOnce: a password file written by an earlier
// release (PBKDF2-SHA256) is accepted with its password and replaced by an
// argon2id hash at the recommended parameters; a wrong password changes
// nothing, and the new hash is not rewritten again.
func TestConsoleUpgradesLegacyHashOnce(t *testing.T) {
	var journal testrig.SyncBuffer
	dir := t.TempDir()
	r := startConsole(t, nil, rigOptions{dir: dir, log: &journal})
	old := legacyHash(t, "old-password-1")
	if err := WritePasswordHash(r.cfg.PasswordFile, old); err != nil {
		t.Fatal(err)
	}
	tm := r.tm
	tm.Expect("Enter a number: ")
	tm.Send("10")
	tm.Expect("Recovery password: ")
	tm.Send("old-password-2")
	tm.Expect("wrong recovery password")
	tm.Send("")
	if b, _ := os.ReadFile(r.cfg.PasswordFile); string(b) != old+"\n" {
		t.Fatalf("a wrong password changed the file: %q", b)
	}
	useShell(tm, "old-password-1")
	b, err := os.ReadFile(r.cfg.PasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	h, err := passhash.Parse(string(b))
	if err != nil || h.Scheme != passhash.Argon2id || h.Params != passhash.Recommended || !h.Verify("old-password-1") {
		t.Fatalf("password file after the right password: %q (%+v, %v)", b, h.Params, err)
	}
	if fi, _ := os.Stat(r.cfg.PasswordFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode %v", fi.Mode().Perm())
	}
	useShell(tm, "old-password-1")
	if b2, _ := os.ReadFile(r.cfg.PasswordFile); !bytes.Equal(b2, b) {
		t.Fatal("an up-to-date hash was rewritten")
	}
	if j := journal.String(); strings.Count(j, `msg="console: recovery password hash upgraded"`) != 1 ||
		!strings.Contains(j, `from=pbkdf2-sha256 to="argon2id m=19456,t=2"`) {
		t.Fatalf("journal, want one upgrade from pbkdf2-sha256:\n%s", j)
	}
}

// legacyHash writes a hash as releases before argon2id did
// (pbkdf2-sha256$ITER$SALT$KEY, their default 200000 iterations).
func legacyHash(t *testing.T, pw string) string {
	salt := []byte("0123456789abcdef")
	key, err := pbkdf2.Key(sha256.New, pw, salt, 200_000, 32)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$200000$%s$%s", enc.EncodeToString(salt), enc.EncodeToString(key))
}
