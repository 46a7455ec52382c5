// Package atomicfile writes files so that a crash leaves either the old or
// the new content, never a mix: temp file in the same directory, fsync,
// rename, fsync of the directory. Read loads such a state file back.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Read reads the state file at path and decodes it. A missing file is not
// an error: found is false. Errors name the file by what it is (e.g.
// "allocation record"); one that does not decode is named with its path
// and, when given, hint: the operator's way out (e.g. "delete it: the agent
// writes it again").
func Read[T any](path, what, hint string, decode func([]byte) (T, error)) (v T, found bool, err error) {
	var zero T
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, fmt.Errorf("reading %s: %w", what, err)
	}
	if v, err = decode(b); err != nil {
		if hint != "" {
			return zero, false, fmt.Errorf("%s %s: %w (%s)", what, path, err, hint)
		}
		return zero, false, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return v, true, nil
}

// Write replaces path with data atomically and durably.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating temp file for %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("setting mode of %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp, path, err)
	}
	ok = true
	return SyncDir(dir)
}

// Remove deletes path (absent is fine) and syncs its directory.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory so renames and removals in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
