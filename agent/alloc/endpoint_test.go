package alloc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/site"
)

// warnCounter counts the warnings (and worse) logged through it.
type warnCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *warnCounter) WithGroup(string) slog.Handler            { return w }
func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.mu.Lock()
		w.msgs = append(w.msgs, r.Message)
		w.mu.Unlock()
	}
	return nil
}

func (w *warnCounter) count(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// noMembers is a gossip view without peers: enough for a lone voter.
type noMembers struct{}

func (noMembers) Peers() []site.Peer         { return nil }
func (noMembers) Subscribe() <-chan struct{} { return make(chan struct{}) }

// startLoneVoter runs a single-voter allocator on loopback holding keys and
// waits for its own allocation.
func startLoneVoter(t *testing.T, keys [][]byte, log *slog.Logger) *Allocator {
	t.Helper()
	cfg := Default()
	cfg.Site, cfg.Voters, cfg.StateDir, cfg.Keys = "v", []string{"v"}, t.TempDir(), keys
	cfg.BindAddr = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.RetryInterval = 100 * time.Millisecond
	a, err := New(cfg, noMembers{}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); a.Close(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if _, err := a.Wait(wctx); err != nil {
		t.Fatalf("lone voter not allocated: %v (%s)", err, a.Status().Error)
	}
	return a
}

// closedByPeer reports whether the other side closed c (reset or EOF)
// within d.
func closedByPeer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestStrangerIsRefusedQuietly: a stranger without the fleet key opening
// hundreds of connections is refused on each, and the voter logs a handful
// of lines, not one per connection (it logged 400 lines in 0.4 s).
func TestStrangerIsRefusedQuietly(t *testing.T) {
	var logs warnCounter
	v := startLoneVoter(t, [][]byte{key(1)}, slog.New(&logs))
	stranger := NewKeyHolder("x", [][]byte{key(2)}, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 400 {
		wg.Go(func() {
			c, err := stranger.Conn(v)
			if err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
				c.Close()
			}
		})
	}
	wg.Wait()
	if accepted > 0 {
		t.Fatalf("%d of 400 connections with the wrong key completed a handshake", accepted)
	}
	if n := logs.count("allocator endpoint"); n == 0 || n > 6 {
		t.Fatalf("%d warnings for 400 refused connections, want 1–6 (rate-limited): %v", n, logs.msgs[:min(len(logs.msgs), 10)])
	}
}

// TestSilentConnectionsAreCapped: connections that never finish a
// handshake hold a place only up to the per-address cap; over it they are
// reset at once, not after the handshake timeout.
func TestSilentConnectionsAreCapped(t *testing.T) {
	v := startLoneVoter(t, [][]byte{key(1)}, slog.New(slog.DiscardHandler))
	SetConnLimits(v, 100, 8, 100, 4, 100)
	var conns []net.Conn
	reset := 0
	for range 50 {
		c, err := net.Dial("tcp", v.Endpoint().String())
		if errors.Is(err, syscall.ECONNRESET) {
			reset++ // refused before connect returned
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for _, c := range conns {
		if closedByPeer(c, 200*time.Millisecond) {
			reset++
		}
	}
	if reset != 42 {
		t.Fatalf("%d of 50 silent connections were refused at once, want 42 (8 may wait for their handshake)", reset)
	}
}

// TestPeerOverItsCapIsRefused: one key holder (one site key) may hold
// connsPerPeer channels, one address connsPerIP; the next is refused with a
// busy answer, and a closed channel gives its place back.
func TestPeerOverItsCapIsRefused(t *testing.T) {
	var logs warnCounter
	v := startLoneVoter(t, [][]byte{key(1)}, slog.New(&logs))
	SetConnLimits(v, 100, 100, 100, 4, 6)
	h := NewKeyHolder("m", [][]byte{key(1)}, nil)
	var held []net.Conn
	for i := range 4 {
		c, err := h.Conn(v)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if code, msg, err := RoundTrip(c, v.VoterHash()); err != nil || code != "" {
			t.Fatalf("channel %d under the cap: %q %q %v", i, code, msg, err)
		}
		held = append(held, c)
	}
	for range 20 {
		c, err := h.Conn(v)
		if err != nil {
			t.Fatal(err)
		}
		code, msg, err := RoundTrip(c, v.VoterHash())
		c.Close()
		if code != codeBusy || !strings.Contains(msg, "limit 4 per site key") {
			t.Fatalf("channel over the cap: %q %q %v", code, msg, err)
		}
	}
	if n := logs.count("allocator endpoint"); n > 6 {
		t.Fatalf("%d warnings for 20 refused channels (rate-limited to a handful)", n)
	}
	// Another key from the same address is not affected up to the cap per
	// address (keys cost nothing to make): 4 + 2, then refused.
	var others []net.Conn
	for i := range 3 {
		c, err := NewKeyHolder("n", [][]byte{key(1)}, nil).Conn(v)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		code, msg, err := RoundTrip(c, v.VoterHash())
		switch {
		case i < 2 && (err != nil || code != ""):
			t.Fatalf("another key, channel %d: %q %q %v", i, code, msg, err)
		case i == 2 && (code != codeBusy || !strings.Contains(msg, "limit 6 per address")):
			t.Fatalf("another key over the address's cap: %q %q %v", code, msg, err)
		}
		others = append(others, c)
	}
	// A closed channel frees a place.
	others[0].Close()
	held[0].Close()
	time.Sleep(100 * time.Millisecond) // the voter notices the close
	c, err := h.Conn(v)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, _, err := RoundTrip(c, v.VoterHash()); err != nil || code != "" {
		t.Fatalf("after closing one channel: %q %v", code, err)
	}
}

// TestOversizedRequestEndsTheChannel: a frame header announcing more than a
// request may hold ends the channel at once, before any byte is buffered
// (a peer announcing 1 MB frames on 300 channels once held 147 MB).
func TestOversizedRequestEndsTheChannel(t *testing.T) {
	v := startLoneVoter(t, [][]byte{key(1)}, slog.New(slog.DiscardHandler))
	c, err := NewKeyHolder("m", [][]byte{key(1)}, nil).Conn(v)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(FrameHeader(1 << 20)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.ReadFull(c, make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("channel still open after an oversized frame header: %d %v", n, err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the voter kept waiting for the announced megabyte")
	}
}
