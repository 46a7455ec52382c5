// Package readlimit reads inputs with a size limit: through an
// io.LimitReader of limit+1 bytes, so an oversized file costs at most that
// much memory and is refused with an error naming it and the limit.
package readlimit

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is wrapped by every error about an input over its limit.
var ErrTooLarge = errors.New("input over its size limit")

// TooLargeError names the input and its limit.
type TooLargeError struct {
	// What names the input, e.g. "plan file /tmp/p.yaml".
	What  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %s, the limit", e.What, Size(e.Limit))
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// All reads r to its end, or fails with a *TooLargeError naming what once
// more than limit bytes arrive.
func All(r io.Reader, what string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{What: what, Limit: limit}
	}
	return b, nil
}

// File reads the file at path like os.ReadFile, but at most limit bytes:
// a larger file is a *TooLargeError naming what and path. Other errors
// are the os package's, which name the path (errors.Is(err, fs.ErrNotExist)
// holds for a missing file).
func File(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return All(f, what+" "+path, limit)
}

// Size writes a byte count the way limits are documented: 1 MiB, 64 KiB, 300 bytes.
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
