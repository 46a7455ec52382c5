package testrig

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTmpfsFillsUp(t *testing.T) {
	dir := Tmpfs(t, 64<<10)
	FillFS(t, dir, 8<<10)
	if err := os.WriteFile(filepath.Join(dir, "fits"), make([]byte, 4<<10), 0o600); err != nil {
		t.Fatalf("4 KiB into 8 KiB free: %v", err)
	}
	err := os.WriteFile(filepath.Join(dir, "too-big"), make([]byte, 16<<10), 0o600)
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("16 KiB into 4 KiB free: err = %v, want ENOSPC", err)
	}
}
