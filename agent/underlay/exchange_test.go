package underlay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/sys/unix"
)

var testMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}

// pairConn is one end of a datagram socketpair posing as a raw link: what
// one end writes, the other reads, whatever the address.
type pairConn struct{ *net.UnixConn }

func (c pairConn) WriteTo(b []byte, _ net.Addr) (int, error) { return c.Write(b) }
func (c pairConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.Read(b)
	return n, nil, err
}

func socketpair(t testing.TB) (a, b net.PacketConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.PacketConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FilePacketConn(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = pairConn{c.(*net.UnixConn)}
	}
	return conns[0], conns[1]
}

// dhcpServer is a real server4 answering over a socketpair, standing in for
// a DHCP server on a link: it offers 192.0.2.10/24 with the options set in
// reply, can drop the first N messages (a slow server), stay silent or NAK.
type dhcpServer struct {
	mu       sync.Mutex
	received []*dhcpv4.DHCPv4
	reply    []dhcpv4.Option // extra options in OFFER and ACK
	yiaddr   string
	drop     int  // drop this many messages first
	silent   bool // never answer
	nak      bool // NAK every REQUEST
}

// newServer starts the server and returns the client end of the link.
func newServer(t testing.TB, s *dhcpServer) net.PacketConn {
	t.Helper()
	if s.yiaddr == "" {
		s.yiaddr = "192.0.2.10"
	}
	clientRaw, serverRaw := socketpair(t)
	srv, err := server4.NewServer("", nil, s.handle,
		server4.WithConn(nclient4.NewBroadcastUDPConn(serverRaw, &net.UDPAddr{Port: nclient4.ServerPort})))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { _ = srv.Close() })
	return nclient4.NewBroadcastUDPConn(clientRaw, &net.UDPAddr{Port: nclient4.ClientPort})
}

func (s *dhcpServer) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = append(s.received, m)
	if s.silent || len(s.received) <= s.drop {
		return
	}
	mods := []dhcpv4.Modifier{dhcpv4.WithServerIP(net.ParseIP("192.0.2.2")),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("192.0.2.2")))}
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		mods = append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
	case dhcpv4.MessageTypeRequest:
		if s.nak {
			mods = append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithOption(dhcpv4.OptMessage("wrong network")))
			break
		}
		mods = append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
	default:
		return
	}
	if !s.nak || m.MessageType() == dhcpv4.MessageTypeDiscover {
		mods = append(mods, dhcpv4.WithYourIP(net.ParseIP(s.yiaddr)), dhcpv4.WithLeaseTime(600))
		for _, o := range s.reply {
			mods = append(mods, dhcpv4.WithOption(o))
		}
	}
	resp, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		return
	}
	_, _ = conn.WriteTo(resp.ToBytes(), peer)
}

func (s *dhcpServer) messages() []*dhcpv4.DHCPv4 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func runExchange(t *testing.T, s *dhcpServer, opts Options) (*Lease, error) {
	t.Helper()
	conn := newServer(t, s)
	opts = opts.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	return exchange(ctx, conn, testMAC, opts, testLog(t))
}

func TestExchangeRequestsClasslessRoutes(t *testing.T) {
	s := &dhcpServer{reply: []dhcpv4.Option{mask(24), routers("192.0.2.1")}}
	if _, err := runExchange(t, s, Options{Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	// (A loaded machine may add retransmissions; the first two are the exchange.)
	msgs := s.messages()
	if len(msgs) < 2 || msgs[0].MessageType() != dhcpv4.MessageTypeDiscover || msgs[len(msgs)-1].MessageType() != dhcpv4.MessageTypeRequest {
		t.Fatalf("server saw %d messages, want DISCOVER ... REQUEST", len(msgs))
	}
	for _, m := range msgs {
		for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionInterfaceMTU, dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionServerIdentifier, dhcpv4.OptionClasslessStaticRoute} {
			if !m.IsOptionRequested(code) {
				t.Errorf("%s does not request %s (parameter request list %v)", m.MessageType(), code, m.ParameterRequestList())
			}
		}
	}
}

// TestExchangeDecisions runs the real client against a real server4 and
// checks the decision on what the server sent.
func TestExchangeDecisions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reply   []dhcpv4.Option
		yiaddr  string
		wantGW  string
		wantSrc string
		wantErr error
	}{
		{"option 3 only", []dhcpv4.Option{mask(24), routers("192.0.2.1")}, "", "192.0.2.1", SourceOption3, nil},
		{"121 wins", []dhcpv4.Option{mask(24), routers("192.0.2.254"), classless("0.0.0.0/0", "192.0.2.1")}, "", "192.0.2.1", SourceOption121, nil},
		{"121 without default", []dhcpv4.Option{mask(24), routers("192.0.2.254"), classless("198.51.100.0/24", "192.0.2.1")}, "", "", "", ErrNoGateway},
		{"/32 on-link route", []dhcpv4.Option{mask(32), classless("10.0.0.1/32", "0.0.0.0", "0.0.0.0/0", "10.0.0.1")}, "10.0.0.50", "10.0.0.1", SourceOption121, nil},
		{"gateway is self", []dhcpv4.Option{mask(24), routers("192.0.2.10")}, "", "", "", ErrGatewayIsSelf},
		{"gateway off-link", []dhcpv4.Option{mask(24), routers("198.51.100.1")}, "", "", "", ErrGatewayOffLink},
		{"no gateway", []dhcpv4.Option{mask(24)}, "", "", "", ErrNoGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := runExchange(t, &dhcpServer{reply: tc.reply, yiaddr: tc.yiaddr}, Options{Timeout: 2 * time.Second})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Addr.String() != tc.wantGW || l.Source != tc.wantSrc {
				t.Fatalf("gateway %s from %s, want %s from %s", l.Addr, l.Source, tc.wantGW, tc.wantSrc)
			}
		})
	}
}

func TestExchangeRetriesSlowServer(t *testing.T) {
	s := &dhcpServer{reply: []dhcpv4.Option{mask(24), routers("192.0.2.1")}, drop: 2}
	if _, err := runExchange(t, s, Options{Timeout: 2 * time.Second, Retries: 3}); err != nil {
		t.Fatalf("server dropping the first 2 messages: %v", err)
	}
	// 2 dropped DISCOVERs, DISCOVER, REQUEST (more only if a loaded machine delays a reply).
	if n := len(s.messages()); n < 4 {
		t.Fatalf("server saw %d messages, want at least 4 (2 dropped DISCOVERs, DISCOVER, REQUEST)", n)
	}
}

func TestExchangeNoResponseIsBounded(t *testing.T) {
	s := &dhcpServer{silent: true}
	start := time.Now()
	_, err := runExchange(t, s, Options{Timeout: 400 * time.Millisecond, Retries: 2})
	if !errors.Is(err, ErrNoResponse) {
		t.Fatalf("err = %v, want ErrNoResponse", err)
	}
	// The bound is the 400ms timeout; the slack only absorbs a loaded machine.
	if d := time.Since(start); d > 400*time.Millisecond+time.Second {
		t.Fatalf("gave up after %s, want within the 400ms timeout", d)
	}
	// First send + 2 retransmissions (at most; at least one retransmission).
	if n := len(s.messages()); n < 2 || n > 3 {
		t.Fatalf("server saw %d DISCOVERs, want 2-3 (Retries 2)", n)
	}
}

func TestExchangeNAK(t *testing.T) {
	s := &dhcpServer{reply: []dhcpv4.Option{mask(24), routers("192.0.2.1")}, nak: true}
	_, err := runExchange(t, s, Options{Timeout: time.Second})
	if !errors.Is(err, ErrNAK) || !strings.Contains(err.Error(), "wrong network") {
		t.Fatalf("err = %v, want ErrNAK quoting the server's message", err)
	}
}

func TestExchangeInitRebootNAK(t *testing.T) {
	s := &dhcpServer{nak: true}
	_, err := runExchange(t, s, Options{Timeout: 5 * time.Second, RequestIP: "203.0.113.7"})
	if !errors.Is(err, ErrNAK) {
		t.Fatalf("err = %v, want ErrNAK", err)
	}
	for _, m := range s.messages() { // no DISCOVER: only INIT-REBOOT REQUESTs
		if m.MessageType() != dhcpv4.MessageTypeRequest ||
			!m.RequestedIPAddress().Equal(net.ParseIP("203.0.113.7")) || m.ServerIdentifier() != nil {
			t.Fatalf("want only INIT-REBOOT REQUESTs for 203.0.113.7 without server id, got %v", m)
		}
	}
}

func TestFirstWaitFitsTimeout(t *testing.T) {
	for _, retries := range []int{0, 1, 3, 10} {
		timeout := 10 * time.Second
		w := firstWait(timeout, retries)
		total := time.Duration(0)
		for i := 0; i <= retries; i++ {
			total += w << i
		}
		if 2*total > timeout+time.Millisecond*50 && w > 10*time.Millisecond {
			t.Errorf("retries %d: first wait %s, both messages need %s > timeout %s", retries, w, 2*total, timeout)
		}
	}
}
