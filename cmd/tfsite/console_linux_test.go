package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tfsite/tfsite/internal/passhash"
	"github.com/tfsite/tfsite/internal/testrig"
)

func TestConsoleHelpTeaches(t *testing.T) {
	out := consoleHelp(t)
	for _, want := range []string{"Exit codes:", "80x24", "recovery password", "tfsite console", "console.passwordHash", "tfsite console hash"} {
		if !strings.Contains(out, want) {
			t.Errorf("console --help lacks %q", want)
		}
	}
}

func consoleHelp(t *testing.T) string {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"console", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// reMenuEntry matches one entry as the menu draws it and the help lists it.
var reMenuEntry = regexp.MustCompile(`^\s*(\d+)\) ([A-Za-z][^*+]*?)( [*+])?$`)

// menuEntriesIn reads "N) Label [mark]" entries from text in columns of 40.
func menuEntriesIn(text string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n") {
		cut := min(40, len(line))
		for _, col := range []string{line[:cut], line[cut:]} {
			if m := reMenuEntry.FindStringSubmatch(strings.TrimRight(col, " ")); m != nil {
				out = append(out, m[1]+") "+m[2]+m[3])
			}
		}
	}
	slices.Sort(out)
	return out
}

type consoleRun struct {
	tm   *testrig.PTY
	logs *testrig.SyncBuffer
	wait func() error // the command's result, once it returned
}

// startConsoleCmd runs `tfsite console ARGS` on a fresh pseudo-terminal,
// with every path in a temp dir and the NoCloud seed's user-data given.
func startConsoleCmd(t *testing.T, userData string) consoleRun {
	t.Helper()
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seed, "user-data"), []byte(userData), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tm := testrig.OpenPTY(t)
	logs := &testrig.SyncBuffer{}
	root := newRootCmd()
	root.SetIn(tm.TTY)
	root.SetOut(tm.TTY)
	root.SetErr(logs)
	root.SetArgs([]string{"console", "--config", cfgFile, "--nocloud", seed, "--platform", "none", "--cmdline", "",
		"--password-file", filepath.Join(dir, "console", "password"), "--lockout-file", filepath.Join(dir, "console", "lockout.json"),
		"--state-dir", filepath.Join(dir, "net"), "--oob-state-dir", filepath.Join(dir, "oob"), "--socket", filepath.Join(dir, "api.sock"),
		"--bundle-dir", filepath.Join(dir, "support"), "--authorized-keys", filepath.Join(dir, "authorized_keys"),
		"--shell", "/bin/sh", "--clear=false"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	wait := sync.OnceValue(func() error { return <-done })
	t.Cleanup(func() { cancel(); _ = wait() })
	return consoleRun{tm: tm, logs: logs, wait: wait}
}

// TestConsoleHelpListsTheMenuAsDrawn: `tfsite console --help` lists the
// entries with the numbers and marks the running console's menu shows.
func TestConsoleHelpListsTheMenuAsDrawn(t *testing.T) {
	help := menuEntriesIn(consoleHelp(t))
	r := startConsoleCmd(t, "#cloud-config\n")
	screen := r.tm.Expect("Enter a number: ")
	drawn := menuEntriesIn(screen)
	if len(drawn) < 10 || !slices.Equal(help, drawn) {
		t.Fatalf("the menu shows\n  %q\nthe help lists\n  %q", drawn, help)
	}
	r.tm.Send("0")
	r.tm.Expect("Bye.")
	if err := r.wait(); err != nil {
		t.Fatal(err)
	}
}

// TestConsolePasswordFromNoCloudSeed: the recovery password's hash comes
// from the zero-touch configuration (the NoCloud seed); a wrong password is
// refused and logged to stderr (the journal), the right one opens the shell.
func TestConsolePasswordFromNoCloudSeed(t *testing.T) {
	h, err := passhash.New("seed-password", passhash.Recommended)
	if err != nil {
		t.Fatal(err)
	}
	r := startConsoleCmd(t, "#cloud-config\ntfsite:\n  console:\n    passwordHash: '"+h+"'\n")
	tm := r.tm
	tm.Expect("Enter a number: ")
	tm.Send("10")
	tm.Expect("Recovery password: ")
	tm.Send("not-the-password")
	tm.Expect("wrong recovery password: nothing was done (1 wrong in a row")
	tm.Send("")
	tm.Send("10")
	tm.Expect("Recovery password: ")
	tm.Send("seed-password")
	tm.Expect("type exit to return")
	tm.Send("echo shell-$((40+2))")
	tm.Expect("shell-42")
	tm.Send("exit")
	tm.Expect("Press Enter")
	tm.Send("")
	tm.Send("0")
	tm.Expect("Bye.")
	if err := r.wait(); err != nil {
		t.Fatal(err)
	}
	if l := r.logs.String(); !strings.Contains(l, `msg="console: wrong recovery password"`) || !strings.Contains(l, "failures=1") {
		t.Fatalf("stderr (the journal) lacks the wrong password:\n%s", l)
	}
}

// TestConsoleHashCommand: `tfsite console hash` turns a password into an
// argon2id hash the console accepts, from a pipe or (twice, unechoed) a
// terminal; a bad password is exit 2 and --write stores the file 0600.
func TestConsoleHashCommand(t *testing.T) {
	run := func(in string, args ...string) (string, error) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetIn(strings.NewReader(in))
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(append([]string{"console", "hash"}, args...))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("a-good-password\n")
	if err != nil {
		t.Fatal(err)
	}
	h, err := passhash.Parse(out)
	if err != nil || h.Params != passhash.Recommended || !h.Verify("a-good-password") || strings.Count(out, "\n") != 1 {
		t.Fatalf("printed %q: %+v %v", out, h.Params, err)
	}
	for _, bad := range []string{"", "short\n", strings.Repeat("x", 300) + "\n"} {
		if _, err := run(bad); exitCode(err) != netExitBadInput || strings.Contains(err.Error(), "\n") {
			t.Errorf("password of %d bytes: %v (exit %d), want exit 2 with one line", len(bad), err, exitCode(err))
		}
	}
	file := filepath.Join(t.TempDir(), "console", "password")
	if out, err := run("a-good-password\r\n", "--write", file); err != nil || out != "" {
		t.Fatalf("--write: %q %v", out, err)
	}
	b, _ := os.ReadFile(file)
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("written file: %v %v", fi, err)
	}
	if h, err := passhash.Parse(string(b)); err != nil || !h.Verify("a-good-password") {
		t.Fatalf("written hash %q: %v", b, err)
	}

	// On a terminal: asked twice, never echoed; two different answers fail.
	for _, second := range []string{"term-password", "other-password"} {
		tm := testrig.OpenPTY(t)
		root := newRootCmd()
		var out bytes.Buffer
		root.SetIn(tm.TTY)
		root.SetOut(&out)
		root.SetErr(tm.TTY)
		root.SetArgs([]string{"console", "hash"})
		done := make(chan error, 1)
		go func() { done <- root.Execute() }()
		tm.Expect("New recovery password: ")
		tm.Send("term-password")
		tm.Expect("Repeat it: ")
		tm.Send(second)
		err := <-done
		if strings.Contains(tm.Transcript(), "term-password") {
			t.Fatal("the password was echoed")
		}
		if second != "term-password" {
			if exitCode(err) != netExitBadInput {
				t.Fatalf("different answers: %v", err)
			}
			continue
		}
		if h, perr := passhash.Parse(out.String()); err != nil || perr != nil || !h.Verify("term-password") {
			t.Fatalf("from a terminal: %q %v %v", out.String(), err, perr)
		}
	}
}
