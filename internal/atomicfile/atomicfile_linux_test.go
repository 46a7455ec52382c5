package atomicfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/testrig"
)

// On a really full disk (a small tmpfs) the second temp file fails with
// ENOSPC after the first fit: neither old file changes, no temp file stays.
func TestWriteSetOnFullDiskLeavesOldFiles(t *testing.T) {
	dir := testrig.Tmpfs(t, 64<<10)
	a, b := filepath.Join(dir, "kubeadm.yaml"), filepath.Join(dir, "tf.yaml")
	if err := atomicfile.WriteSet(atomicfile.File{Path: a, Data: []byte("old kubeadm"), Perm: 0o600},
		atomicfile.File{Path: b, Data: []byte("old tf"), Perm: 0o600}); err != nil {
		t.Fatal(err)
	}
	testrig.FillFS(t, dir, 8<<10)
	err := atomicfile.WriteSet(atomicfile.File{Path: a, Data: make([]byte, 2<<10), Perm: 0o600},
		atomicfile.File{Path: b, Data: make([]byte, 32<<10), Perm: 0o600})
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC from the second temp file", err)
	}
	for p, want := range map[string]string{a: "old kubeadm", b: "old tf"} {
		if got, _ := os.ReadFile(p); string(got) != want {
			t.Errorf("%s = %.20q after the failed set, want %q", filepath.Base(p), got, want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("tmpfs holds %v, want the 2 files and the filler (temp files left?)", ents)
	}
}
