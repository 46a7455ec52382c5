package testrig

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs mounts a tmpfs of sizeBytes (rounded up to pages) on a fresh temp
// directory and returns it; it is unmounted when the test ends. A full disk
// is then real: a write past its size fails with ENOSPC. Needs root.
func Tmpfs(t testing.TB, sizeBytes int64) string {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size="+strconv.FormatInt(sizeBytes, 10)+",mode=0700"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// FillFS writes a filler file into dir so that the file system holding it
// keeps only about free bytes (whole blocks) for other files.
func FillFS(t testing.TB, dir string, free int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	avail := int64(st.Bavail) * st.Bsize
	if avail < free {
		t.Fatalf("%s has %d bytes free, fewer than the %d asked to keep", dir, avail, free)
	}
	if err := os.WriteFile(filepath.Join(dir, ".filler"), make([]byte, avail-free), 0o600); err != nil {
		t.Fatalf("filling %s: %v", dir, err)
	}
}
