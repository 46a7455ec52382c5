package testrig

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// PTY is an 80x24 pseudo-terminal driven expect-style from the operator's
// side; TTY is the other end to give the program under test (its stdin and
// stdout). Both are closed at cleanup.
type PTY struct {
	TTY  *os.File
	t    testing.TB
	ptmx *os.File
	mu   sync.Mutex
	buf  strings.Builder
	pos  int
}

// OpenPTY opens the terminal and starts collecting what is written to it.
func OpenPTY(t testing.TB) *PTY {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		t.Fatal(err)
	}
	p := &PTY{TTY: tty, t: t, ptmx: ptmx}
	go p.pump()
	return p
}

func (p *PTY) pump() {
	b := make([]byte, 4096)
	for {
		n, err := p.ptmx.Read(b)
		p.mu.Lock()
		p.buf.Write(b[:n])
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Expect waits up to 20 s for s after the previous match and moves past it,
// returning what the terminal showed from the previous match to the end of
// this one; the test fails with what the terminal showed instead.
func (p *PTY) Expect(s string) string {
	p.t.Helper()
	end := time.Now().Add(20 * time.Second)
	for time.Now().Before(end) {
		p.mu.Lock()
		all := p.buf.String()
		p.mu.Unlock()
		if i := strings.Index(all[p.pos:], s); i >= 0 {
			seg := all[p.pos : p.pos+i+len(s)]
			p.pos += i + len(s)
			return seg
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t.Fatalf("terminal never showed %q; it shows after the last match:\n%s", s, p.buf.String()[p.pos:])
	return ""
}

// Since returns what the terminal showed after the last match.
func (p *PTY) Since() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()[p.pos:]
}

// Send types line and Enter (a carriage return, as a terminal sends).
func (p *PTY) Send(line string) {
	p.t.Helper()
	if _, err := p.ptmx.Write([]byte(line + "\r")); err != nil {
		p.t.Fatal(err)
	}
}

// Transcript is everything the terminal showed.
func (p *PTY) Transcript() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}
