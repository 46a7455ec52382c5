package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/testrig"
)

// On a full disk (a small tmpfs: the new kubeadm.yaml fits, the new tf.yaml
// does not) render fails and leaves both old files, never a new kubeadm.yaml
// next to an old tf.yaml.
func TestRenderOnFullDiskKeepsTheOldPair(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(cfg, []byte(siteYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	out := testrig.Tmpfs(t, 256<<10)
	if _, err := runCmd(t, "render", "--config", cfg, "--out", out); err != nil {
		t.Fatal(err)
	}
	kubeadm, _ := os.ReadFile(filepath.Join(out, "kubeadm.yaml"))
	manifest, _ := os.ReadFile(filepath.Join(out, "tf.yaml"))
	if len(kubeadm) > 4<<10 || len(manifest) < 12<<10 {
		t.Fatalf("kubeadm.yaml is %d bytes, tf.yaml %d: the test wants one page and more than two", len(kubeadm), len(manifest))
	}
	testrig.FillFS(t, out, 8<<10)
	_, err := runCmd(t, "render", "--config", cfg, "--pod", "10.50.0.0/16", "--out", out)
	if exitCode(err) != exitRenderWrite || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("render on a full disk: exit %d, %v; want %d and ENOSPC", exitCode(err), err, exitRenderWrite)
	}
	for name, old := range map[string][]byte{"kubeadm.yaml": kubeadm, "tf.yaml": manifest} {
		if got, _ := os.ReadFile(filepath.Join(out, name)); !bytes.Equal(got, old) {
			t.Errorf("%s changed by the failed render (%d bytes, was %d)", name, len(got), len(old))
		}
	}
	if ents, _ := os.ReadDir(out); len(ents) != 3 {
		t.Errorf("output holds %v, want the two files and the filler (a temp file left?)", ents)
	}
}
