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
	b, err := io.ReadAll(Reader(r, what, limit))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Reader passes r's first limit bytes on; reading more fails with a
// *TooLargeError naming what, where io.LimitReader would end in a silent
// EOF (and a decoder in a puzzling "unexpected EOF"). It asks r for at most
// limit+1 bytes.
func Reader(r io.Reader, what string, limit int64) io.Reader {
	return &reader{r: r, left: limit, err: &TooLargeError{What: what, Limit: limit}}
}

type reader struct {
	r    io.Reader
	left int64 // bytes still allowed; -1 once the limit was passed
	err  error
}

func (l *reader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, l.err
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		n, l.left = int(l.left), -1
		return n, l.err
	}
	l.left -= int64(n)
	return n, err
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
