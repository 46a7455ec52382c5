package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/cmd/internal/cli"
	"github.com/tfsite/tfsite/internal/testrig"
)

// agentProc is a `tfsite agent` process of the built binary.
type agentProc struct {
	t        *testing.T
	bin      string
	cfg      string // config file
	socket   string
	stateDir string
	cmd      *exec.Cmd
	stderr   bytes.Buffer
}

// newAgentProc writes the config of site name at address addr (a voter
// when it is in voters) under dir.
func newAgentProc(t *testing.T, bin, dir, name, addr, key string, voters, seeds []string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, bin: bin, cfg: filepath.Join(dir, name+".yaml"), socket: filepath.Join(dir, name+".sock"), stateDir: filepath.Join(dir, name)}
	yaml := fmt.Sprintf("site: %s\nvoters: [%s]\nstateDir: %s\napiSocket: %s\nmetricsAddress: \"\"\nunderlay: {disabled: true}\n"+
		"gossip: {bindAddress: %s, profile: local, key: %q, seeds: [%s]}\nallocator: {retryInterval: 300ms}\n",
		name, strings.Join(voters, ", "), p.stateDir, p.socket, addr, key, strings.Join(seeds, ", "))
	if err := os.WriteFile(p.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *agentProc) command() *exec.Cmd {
	cmd := exec.Command(p.bin, "agent", "--cmdline", "", "--nocloud", "off", "--platform", "none", "--config", p.cfg)
	p.stderr.Reset()
	cmd.Stderr = &p.stderr
	return cmd
}

// start runs the agent until stop, and waits until it holds an allocation.
func (p *agentProc) start() {
	p.t.Helper()
	p.cmd = p.command()
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(p.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := runCmd(p.t, "status", "--socket", p.socket, "--allocated")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not allocated: %v\n%s", p.cfg, err, p.stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *agentProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	p.cmd = nil
}

// fail runs the agent expecting it to stop by itself; it returns its exit
// code and the last line of its stderr (the error), after checking that
// stderr holds no stack trace.
func (p *agentProc) fail() (int, string) {
	p.t.Helper()
	cmd := p.command()
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		p.t.Fatalf("agent did not stop by itself:\n%s", p.stderr.String())
	}
	var xe *exec.ExitError
	if !errors.As(err, &xe) {
		p.t.Fatalf("agent exited %v:\n%s", err, p.stderr.String())
	}
	out := strings.TrimSpace(p.stderr.String())
	for _, bad := range []string{"goroutine ", "panic", "SIGBUS", "fatal error"} {
		if strings.Contains(out, bad) {
			p.t.Fatalf("agent stderr holds a crash (%q):\n%s", bad, out)
		}
	}
	return xe.ExitCode(), out[strings.LastIndexByte(out, '\n')+1:]
}

// TestBackupRestoreAndDamagedStoreWithTheBinary drives the real binary as
// an operator would: back up a running voter's table; a damaged raft.db
// stops the agent with exit 7 and one line naming the file (it died of
// SIGBUS with exit 2 before); moved aside as that line says, exit 8 (it
// started a new, empty table before); damaged or oversized backups are
// refused; the backup restored, every site holds what it held.
func TestBackupRestoreAndDamagedStoreWithTheBinary(t *testing.T) {
	bin := testrig.TfsiteBinary(t)
	dir, err := os.MkdirTemp("", "tfsb") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	key := make([]byte, 32)
	rand.Read(key)
	net := fmt.Sprintf("127.%d.%d.", 100+mrand.N(100), mrand.N(250))
	voters := []string{"bk-a"}
	a := newAgentProc(t, bin, dir, "bk-a", net+"1", base64.StdEncoding.EncodeToString(key), voters, nil)
	b := newAgentProc(t, bin, dir, "bk-b", net+"2", base64.StdEncoding.EncodeToString(key), voters, []string{net + "1"})
	a.start()
	b.start()
	statusOf := func(p *agentProc) api.Status {
		t.Helper()
		st, err := api.NewClient(p.socket).Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := map[string]api.Allocation{"bk-a": *statusOf(a).Allocation, "bk-b": *statusOf(b).Allocation}

	file := filepath.Join(dir, "backup.json")
	os.WriteFile(file, []byte("an older backup\n"), 0o644) // replaced atomically, mode 0600
	out, err := runCmd(t, "backup", "--socket", a.socket, file)
	if err != nil || !strings.Contains(out, "allocation table of 2 sites") || !strings.Contains(out, "voter bk-a (leader)") {
		t.Fatalf("backup: %q, %v", out, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".backup.json.tmp-*")); len(left) > 0 {
		t.Fatalf("temp files left: %v", left)
	}
	saved, err := alloc.ReadBackupFile(file)
	if err != nil || len(saved.Table) != 2 {
		t.Fatalf("backup file: %+v, %v", saved, err)
	}
	if _, err := runCmd(t, "backup", "--socket", b.socket, filepath.Join(dir, "nope.json")); exitCode(err) != exitRefused || !strings.Contains(err.Error(), "voter") {
		t.Fatalf("backup on a non-voter: exit %d, %v", exitCode(err), err)
	}
	b.stop()
	a.stop()

	// A truncated raft.db: metas intact, every other page cut off.
	db := filepath.Join(a.stateDir, "alloc", "raft", "raft.db")
	if err := os.Truncate(db, 2*int64(os.Getpagesize())+100); err != nil {
		t.Fatal(err)
	}
	code, line := a.fail()
	t.Logf("damaged: exit %d: %s", code, line)
	if code != cli.ExitDamagedState || !strings.HasPrefix(line, "tfsite: raft store damaged: "+db) || !strings.Contains(line, "mv ") {
		t.Fatalf("damaged raft.db: exit %d, %q; want exit 7 and one line naming it and the way out", code, line)
	}
	raftDir := filepath.Join(a.stateDir, "alloc", "raft")
	if err := os.Rename(raftDir, raftDir+".damaged"); err != nil {
		t.Fatal(err)
	}
	code, line = a.fail()
	t.Logf("lost: exit %d: %s", code, line)
	if code != cli.ExitStoreLost || !strings.Contains(line, "tfsite restore") {
		t.Fatalf("lost raft store: exit %d, %q; want exit 8 naming tfsite restore", code, line)
	}

	data, _ := os.ReadFile(file)
	broken := filepath.Join(dir, "broken.json")
	for name, content := range map[string][]byte{
		"truncated": data[:len(data)*2/3],
		"altered":   bytes.Replace(data, []byte(`"asn": `), []byte(`"asn": 1`), 1),
	} {
		os.WriteFile(broken, content, 0o600)
		if _, err := runCmd(t, "restore", "--state-dir", a.stateDir, broken); exitCode(err) != cli.ExitDamagedState || !strings.Contains(err.Error(), broken) {
			t.Fatalf("%s backup: exit %d, %v", name, exitCode(err), err)
		}
	}
	os.Truncate(broken, alloc.MaxBackupSize+1)
	if _, err := runCmd(t, "restore", "--state-dir", a.stateDir, broken); exitCode(err) != cli.ExitDamagedState || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("oversized backup: exit %d, %v", exitCode(err), err)
	}
	if out, err := runCmd(t, "restore", "--state-dir", a.stateDir, file); err != nil || !strings.Contains(out, "restored the allocation table of 2 sites") {
		t.Fatalf("restore: %q, %v", out, err)
	}
	if _, err := runCmd(t, "restore", "--state-dir", a.stateDir, file); exitCode(err) != exitRefused || !strings.Contains(err.Error(), "holds raft state") {
		t.Fatalf("restore over raft state: exit %d, %v", exitCode(err), err)
	}

	a.start()
	b.start()
	after := map[string]api.Allocation{"bk-a": *statusOf(a).Allocation, "bk-b": *statusOf(b).Allocation}
	if after["bk-a"] != before["bk-a"] || after["bk-b"] != before["bk-b"] {
		t.Fatalf("allocations after the restore %+v, before %+v", after, before)
	}
	again := filepath.Join(dir, "again.json")
	if _, err := runCmd(t, "backup", "--socket", a.socket, again); err != nil {
		t.Fatal(err)
	}
	if b2, err := alloc.ReadBackupFile(again); err != nil || !slices.Equal(b2.Table, saved.Table) {
		t.Fatalf("table after the restore: %v (%v), want %v", b2.Table, err, saved.Table)
	}
}

func TestRestoreUsageAndHelp(t *testing.T) {
	for _, args := range [][]string{{"restore"}, {"restore", "--empty"}, {"restore", "--empty", "--voters", "a", "f.json"}, {"restore", "--voters", "a", "f.json"}} {
		if _, err := runCmd(t, args...); exitCode(err) != exitBadConfig {
			t.Errorf("%v: exit %d, %v; want 2", args, exitCode(err), err)
		}
	}
	for _, args := range [][]string{{"backup"}, {"restore"}} {
		out, err := runCmd(t, append(args, "--help")...)
		if err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "Exit codes:") {
			t.Errorf("%v --help lacks examples or exit codes:\n%s", args, out)
		}
	}
	out, _ := runCmd(t, "agent", "--help")
	for _, want := range []string{"\n  7  ", "\n  8  "} {
		if !strings.Contains(out, want) {
			t.Errorf("agent --help does not document exit code %q", want)
		}
	}
}
