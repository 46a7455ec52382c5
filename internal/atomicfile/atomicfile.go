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
	"strings"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// MaxStateFile bounds a state file Read loads: a larger one is refused
// like one that does not decode, and costs no more memory than this.
const MaxStateFile = 16 << 20

// Read reads the state file at path and decodes it. A missing file is not
// an error: found is false. Errors name the file by what it is (e.g.
// "allocation record"); one that does not decode, or is larger than
// MaxStateFile, is named with its path and, when given, hint: the
// operator's way out (e.g. "delete it: the agent writes it again").
func Read[T any](path, what, hint string, decode func([]byte) (T, error)) (v T, found bool, err error) {
	var zero T
	b, err := readlimit.File(path, what, MaxStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return zero, false, nil
	}
	if errors.Is(err, readlimit.ErrTooLarge) {
		if hint != "" {
			return zero, false, fmt.Errorf("%w (%s)", err, hint)
		}
		return zero, false, err
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
	return WriteSet(File{Path: path, Data: data, Perm: perm})
}

// File is one file of a set written by WriteSet.
type File struct {
	Path string
	Data []byte
	Perm os.FileMode
}

// WriteSet replaces several files that belong together (kubeadm.yaml and
// tf.yaml): every temp file is written and fsynced first, so a failure
// then (a full disk, a missing directory) removes the temp files and leaves
// every old file untouched; only when all are on disk are they renamed, in
// order, and their directories fsynced. A rename needs no space, so only a
// crash between two renames (microseconds) can leave part of the set new.
func WriteSet(files ...File) error {
	seen := map[string]bool{}
	for _, f := range files {
		p := filepath.Clean(f.Path)
		if seen[p] {
			return fmt.Errorf("writing %s twice in one set", f.Path)
		}
		seen[p] = true
	}
	temps := make([]string, 0, len(files))
	done := 0 // temps[:done] are renamed
	defer func() {
		for _, tmp := range temps[done:] {
			_ = os.Remove(tmp)
		}
	}()
	for _, f := range files {
		tmp, err := writeTemp(f)
		if err != nil {
			return err
		}
		temps = append(temps, tmp)
	}
	for i, f := range files {
		if err := os.Rename(temps[i], f.Path); err != nil {
			err = fmt.Errorf("renaming %s to %s: %w", temps[i], f.Path, err)
			if i > 0 {
				err = fmt.Errorf("%w (already replaced: %s)", err, joinPaths(files[:i]))
			}
			return err
		}
		done++
	}
	dirs := map[string]bool{}
	for _, f := range files {
		if dir := filepath.Dir(f.Path); !dirs[dir] {
			dirs[dir] = true
			if err := SyncDir(dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTemp writes f's data to a temp file next to f.Path, with f's mode,
// fsynced and closed; on failure it leaves nothing behind.
func writeTemp(f File) (_ string, err error) {
	fh, err := os.CreateTemp(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("creating temp file for %s: %w", f.Path, err)
	}
	tmp := fh.Name()
	defer func() {
		if err != nil {
			_ = fh.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := fh.Write(f.Data); err != nil {
		return "", fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := fh.Chmod(f.Perm); err != nil {
		return "", fmt.Errorf("setting mode of %s: %w", tmp, err)
	}
	if err := fh.Sync(); err != nil {
		return "", fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := fh.Close(); err != nil {
		return "", fmt.Errorf("closing %s: %w", tmp, err)
	}
	return tmp, nil
}

func joinPaths(files []File) string {
	s := make([]string, len(files))
	for i, f := range files {
		s[i] = f.Path
	}
	return strings.Join(s, ", ")
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
