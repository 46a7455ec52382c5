package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/agent/site"
)

// tableBackend answers from fixed data and records releases, so the test
// checks what crosses the socket.
type tableBackend struct {
	status   Status
	bgp      []site.BGPPeer
	bgpErr   error
	released []string
}

func (b *tableBackend) BGPPeers(context.Context) ([]site.BGPPeer, error) { return b.bgp, b.bgpErr }

func (b *tableBackend) Status(context.Context) Status { return b.status }
func (b *tableBackend) Peers(context.Context) []Peer  { return b.status.Peers }
func (b *tableBackend) Release(_ context.Context, site string) error {
	switch site {
	case "alive-site":
		return fmt.Errorf("%w: site %q is alive; stop it before releasing", ErrConflict, site)
	case "ghost":
		return fmt.Errorf("%w: site %q holds no allocation", ErrNotFound, site)
	case "noquorum":
		return fmt.Errorf("%w: no voter quorum to release %q", ErrUnavailable, site)
	case "boom":
		return errors.New("disk on fire")
	}
	b.released = append(b.released, site)
	return nil
}

func startServer(t *testing.T, b Backend) (*Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "api.sock")
	s, err := NewServer(ServerConfig{Socket: sock}, b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})
	return s, sock
}

func sampleStatus() Status {
	a := &Allocation{ASN: 64513, Pod: netip.MustParsePrefix("10.32.8.0/21"), Service: netip.MustParsePrefix("10.96.4.0/22"), Fabric: netip.MustParsePrefix("10.64.4.0/22")}
	return Status{
		Site: "site-a", Phase: PhaseAllocated, Allocation: a,
		Underlay: &Underlay{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1"},
		Voter:    true, Voters: []string{"site-a"}, RaftState: "leader", Leader: "site-a",
		Peers: []Peer{
			{Site: "site-b", State: StateAlive, Address: "192.0.2.11:7946", Allocation: &Allocation{ASN: 64514, Pod: netip.MustParsePrefix("10.32.16.0/21")}},
			{Site: "site-c", State: StateDead},
		},
	}
}

func TestStatusAndPeersRoundTrip(t *testing.T) {
	b := &tableBackend{status: sampleStatus()}
	_, sock := startServer(t, b)
	c := NewClient(sock)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Site != "site-a" || st.Allocation == nil || *st.Allocation != *b.status.Allocation || st.Underlay.Gateway != "192.0.2.1" || len(st.Peers) != 2 {
		t.Fatalf("status round trip = %+v", st)
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[0].Allocation.ASN != 64514 || peers[1].State != StateDead {
		t.Fatalf("peers round trip = %+v", peers)
	}
}

func TestBGPPeersRoundTripAndUnavailable(t *testing.T) {
	want := []site.BGPPeer{{Site: "site-b", ASN: 64514, Address: netip.MustParseAddr("192.0.2.11")}}
	b := &tableBackend{status: sampleStatus(), bgp: want}
	_, sock := startServer(t, b)
	c := NewClient(sock)
	got, err := c.BGPPeers(t.Context())
	if err != nil || len(got) != 1 || got[0] != want[0] {
		t.Fatalf("BGPPeers = %+v, %v; want %+v", got, err, want)
	}
	b.bgp = nil
	if got, err := c.BGPPeers(t.Context()); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("no peers: got %#v, %v; want an empty list", got, err)
	}
	b.bgpErr = fmt.Errorf("%w: not running the allocator yet", ErrUnavailable)
	if _, err := c.BGPPeers(t.Context()); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "allocator") {
		t.Fatalf("unavailable agent: err = %v, want ErrUnavailable with the reason", err)
	}
}

func TestSocketModeAndStaleSocket(t *testing.T) {
	b := &tableBackend{status: sampleStatus()}
	s, sock := startServer(t, b)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	// A second server on a live socket is refused.
	if _, err := NewServer(ServerConfig{Socket: sock}, b, slog.Default()); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second server on a live socket: err = %v", err)
	}
	s.Close()
	s.Close() // twice is safe
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still present after Close: %v", err)
	}
	// A stale socket file (left by kill -9) is replaced.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s2, err := NewServer(ServerConfig{Socket: sock, Group: fmt.Sprint(os.Getgid())}, b, slog.Default())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer s2.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket with group: mode %v (%v), want 0660", fi.Mode().Perm(), err)
	}
	// A regular file in the way is not deleted.
	file := filepath.Join(t.TempDir(), "notasocket")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := NewServer(ServerConfig{Socket: file}, b, slog.Default()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file at socket path: err = %v", err)
	}
}

func TestReleaseErrorsMapToSentinels(t *testing.T) {
	b := &tableBackend{status: sampleStatus()}
	_, sock := startServer(t, b)
	c := NewClient(sock)
	ctx := context.Background()
	if err := c.Release(ctx, "gone-site"); err != nil || len(b.released) != 1 || b.released[0] != "gone-site" {
		t.Fatalf("Release = %v, released %v", err, b.released)
	}
	for site, want := range map[string]error{"alive-site": ErrConflict, "ghost": ErrNotFound, "noquorum": ErrUnavailable} {
		err := c.Release(ctx, site)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), site) {
			t.Errorf("Release(%s) = %v, want %v naming the site", site, err, want)
		}
		if strings.Count(err.Error(), want.Error()) != 1 {
			t.Errorf("Release(%s) repeats the sentinel: %v", site, err)
		}
	}
	if err := c.Release(ctx, "boom"); err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Release(boom) = %v", err)
	}
}

func TestClientAgentDown(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Status(context.Background())
	if !errors.Is(err, ErrAgentDown) || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("Status with no agent = %v, want ErrAgentDown naming the socket", err)
	}
}

// A request body over MaxRequestBody is answered 413 naming the limit,
// whatever serves the socket (this test talks to the Server, not to its
// HTTP parser, so it holds when the parser changes).
func TestServerRefusesOversizedRequestBody(t *testing.T) {
	b := &tableBackend{status: sampleStatus()}
	_, sock := startServer(t, b)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Post("http://tfsite/v1/sites/gone-site/release", "application/json", strings.NewReader(strings.Repeat("x", MaxRequestBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg := DecodeError(resp.StatusCode, resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(msg.Error(), "larger than 64 KiB, the limit") {
		t.Fatalf("oversized body: %d %v; want 413 naming the 64 KiB limit", resp.StatusCode, msg)
	}
	if len(b.released) != 0 {
		t.Fatalf("released %v on a refused request", b.released)
	}
}

// An answer over MaxAnswer fails naming the request and the limit, not as
// the truncated JSON a silent io.LimitReader handed the decoder.
func TestClientRefusesOversizedAnswer(t *testing.T) {
	st := sampleStatus()
	st.LastError = strings.Repeat("e", MaxAnswer)
	_, sock := startServer(t, &tableBackend{status: st})
	_, err := NewClient(sock).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "agent answer to GET /v1/status is larger than 16 MiB, the limit") {
		t.Fatalf("Status with a 16 MiB answer = %v, want an error naming the limit", err)
	}
}
