package readlimit

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFileAtAndOverTheLimit(t *testing.T) {
	dir := t.TempDir()
	at, over := filepath.Join(dir, "at"), filepath.Join(dir, "over")
	os.WriteFile(at, []byte(strings.Repeat("x", 1024)), 0o600)
	os.WriteFile(over, []byte(strings.Repeat("x", 1025)), 0o600)
	if b, err := File(at, "config file", 1024); err != nil || len(b) != 1024 {
		t.Fatalf("file at the limit: %d bytes, %v; want all 1024", len(b), err)
	}
	_, err := File(over, "config file", 1024)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("file over the limit: err = %v, want ErrTooLarge", err)
	}
	if want := "config file " + over + " is larger than 1 KiB, the limit"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if _, err := File(filepath.Join(dir, "absent"), "config file", 1024); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent file: err = %v, want fs.ErrNotExist", err)
	}
}

// A device that never ends is read only up to the limit.
func TestFileReadsNoMoreThanTheLimit(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	if _, err := File("/dev/zero", "user-data", 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 16 << 20: "16 MiB", 64 << 10: "64 KiB", 256: "256 bytes", 1536: "1536 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

// Reader hands on the first limit bytes, then fails naming the input; it
// never asks its source for more than limit+1 bytes.
func TestReaderFailsPastTheLimit(t *testing.T) {
	src := &countingReader{r: strings.NewReader(strings.Repeat("y", 100))}
	b, err := io.ReadAll(Reader(src, "agent answer", 10))
	if len(b) != 10 || !errors.Is(err, ErrTooLarge) || err.Error() != "agent answer is larger than 10 bytes, the limit" {
		t.Fatalf("got %d bytes, %v; want 10 and the limit error", len(b), err)
	}
	if src.n > 11 {
		t.Fatalf("read %d bytes from the source, want at most 11", src.n)
	}
	if b, err := io.ReadAll(Reader(strings.NewReader("exactly10!"), "x", 10)); string(b) != "exactly10!" || err != nil {
		t.Fatalf("input at the limit: %q, %v", b, err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// Whatever the input and the limit, All returns the input when it fits and
// the limit error, naming the input, when it does not.
func FuzzAll(f *testing.F) {
	f.Add([]byte("exactly10!"), uint16(10))
	f.Add([]byte("eleven!!!!!"), uint16(10))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		b, err := All(iotest.OneByteReader(bytes.NewReader(data)), "input", int64(limit))
		if len(data) <= int(limit) {
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("%d bytes at limit %d: %q, %v", len(data), limit, b, err)
			}
			return
		}
		if !errors.Is(err, ErrTooLarge) || b != nil || !strings.HasPrefix(err.Error(), "input is larger than ") {
			t.Fatalf("%d bytes over limit %d: %d bytes, %v", len(data), limit, len(b), err)
		}
	})
}
