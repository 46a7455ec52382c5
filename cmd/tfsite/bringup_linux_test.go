package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

func TestBringUpHelpTeaches(t *testing.T) {
	out, err := runCmd(t, "bringup", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Examples:", "Exit codes:", "API socket", "bringUp.enabled", "tfsite-bringup.service"} {
		if !strings.Contains(out, want) {
			t.Errorf("tfsite bringup --help lacks %q", want)
		}
	}
}

func TestBringUpRefusesBadOrDisabledConfig(t *testing.T) {
	dir := t.TempDir()
	off := filepath.Join(dir, "off.yaml")
	os.WriteFile(off, []byte("site: a\nstateDir: "+dir+"\n"), 0o644)
	root := newRootCmd()
	var stderr bytes.Buffer
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&stderr)
	root.SetArgs([]string{"bringup", "--cmdline", "", "--nocloud", "off", "--platform", "none", "--config", off})
	if err := root.Execute(); err != nil || !strings.Contains(stderr.String(), "nothing to do") || !strings.Contains(stderr.String(), "bringUp.enabled") {
		t.Fatalf("bring-up off: err %v, stderr %q; want exit 0 saying nothing to do and naming bringUp.enabled", err, stderr.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("stateDir: "+dir+"\nbringUp:\n  enabled: true\n  kubeconfig: relative.conf\n  kubeadm: \"\"\n"), 0o644)
	_, err := runCmd(t, "bringup", "--cmdline", "", "--nocloud", "off", "--platform", "none", "--config", bad)
	if exitCode(err) != exitBadConfig || !strings.Contains(err.Error(), "bringUp.kubeconfig") || !strings.Contains(err.Error(), "bringUp.kubeadm") {
		t.Fatalf("bad bringUp section: exit %d, %v; want 2 listing every problem", exitCode(err), err)
	}
}

// TestBringUpIgnoresHangUp runs the real binary waiting for its agent: a
// SIGHUP must not stop it (it may be inside a guarded vrouter window), a
// SIGTERM still does, with exit 0.
func TestBringUpIgnoresHangUp(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(conf, []byte("site: a\nstateDir: "+dir+"\napiSocket: "+dir+"/api.sock\nbringUp:\n  enabled: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr testrig.Buffer
	cmd := exec.Command(testrig.TfsiteBinary(t), "bringup", "--cmdline", "", "--nocloud", "off", "--platform", "none", "--config", conf)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for end := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "bring-up started"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("bring-up did not start: %s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("bring-up ended on SIGHUP: %v", err)
	case <-time.After(time.Second):
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bring-up after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bring-up still runs 10 s after SIGTERM")
	}
}
