package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	root.SetArgs([]string{"bringup", "--cmdline", "", "--nocloud", "off", "--config", off})
	if err := root.Execute(); err != nil || !strings.Contains(stderr.String(), "nothing to do") || !strings.Contains(stderr.String(), "bringUp.enabled") {
		t.Fatalf("bring-up off: err %v, stderr %q; want exit 0 saying nothing to do and naming bringUp.enabled", err, stderr.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("stateDir: "+dir+"\nbringUp:\n  enabled: true\n  kubeconfig: relative.conf\n  kubeadm: \"\"\n"), 0o644)
	_, err := runCmd(t, "bringup", "--cmdline", "", "--nocloud", "off", "--config", bad)
	if exitCode(err) != exitBadConfig || !strings.Contains(err.Error(), "bringUp.kubeconfig") || !strings.Contains(err.Error(), "bringUp.kubeadm") {
		t.Fatalf("bad bringUp section: exit %d, %v; want 2 listing every problem", exitCode(err), err)
	}
}
