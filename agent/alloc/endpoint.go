package alloc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/time/rate"
)

// connLimits caps the voter endpoint's connections. A connection counts
// against the handshake caps (by source address) until its Noise handshake
// ends, then against the peer caps (by the static key it proved, and by its
// source address: keys cost nothing to make) until it closes. Over a cap a
// connection is closed at once (reset).
type connLimits struct {
	handshakes      int // unauthenticated connections in their handshake, in total
	handshakesPerIP int // ... from one source address
	conns           int // authenticated connections (Raft, RPC), in total
	connsPerPeer    int // ... of one static key
	connsPerIP      int // ... from one source address
}

// defaultLimits: a site holds a request or two at a time; a voter's Raft
// transport keeps up to 3 pooled connections to each other voter plus its
// pipeline. The default pools' 512 sites all asking the leader at once fit
// under conns. Loopback fleets (tests, bench-alloc) and sites behind one NAT
// put many sites on one address, hence the room per address. Each
// authenticated connection holds at most a 16 KB record and a 16 KB request
// (and only once the peer has sent them): at most 32 MB in all.
var defaultLimits = connLimits{handshakes: 256, handshakesPerIP: 64, conns: 1024, connsPerPeer: 16, connsPerIP: 64}

// rpcIdle is how long an RPC connection may sit without a request.
const rpcIdle = 2 * time.Minute

// endpoint is the voter's listener: it caps connections, runs the Noise
// handshake and routes each connection to Raft (through streamLayer) or to
// the RPC handler.
type endpoint struct {
	ln     net.Listener
	kr     keyring
	self   identity
	limits connLimits
	raftCh chan net.Conn
	handle func(ctx context.Context, req request, from caller) response
	// admitRaft decides whether a peer may speak Raft (authz.go).
	admitRaft func(ctx context.Context, p peerInfo) error
	// voterAt names the voter advertising endpoint ap and its key, for
	// Raft's dials (streamLayer).
	voterAt func(ap netip.AddrPort) (string, []byte, bool)
	warn    *warnLimiter
	dial    dialFunc

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	shaking  int
	shakesBy map[netip.Addr]int
	authed   int
	authedBy map[string]int // by peerKeys
	closed   chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

func newEndpoint(ln net.Listener, kr keyring, self identity, log *slog.Logger) *endpoint {
	return &endpoint{
		ln: ln, kr: kr, self: self, limits: defaultLimits, raftCh: make(chan net.Conn),
		warn:  newWarnLimiter(log),
		conns: map[net.Conn]struct{}{}, shakesBy: map[netip.Addr]int{}, authedBy: map[string]int{},
		closed: make(chan struct{}),
	}
}

func (e *endpoint) serve(ctx context.Context) {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			select {
			case <-e.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			e.warn.warn("allocator endpoint: accept failed", "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-e.closed:
				return
			}
		}
		ip := remoteIP(c)
		if why := e.startHandshake(c, ip); why != "" {
			e.warn.warn("allocator endpoint: refusing a connection", "peer", c.RemoteAddr(), "reason", why)
			reset(c)
			continue
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.serveConn(ctx, c, ip)
		}()
	}
}

// startHandshake admits and tracks a new connection, or says why not.
func (e *endpoint) startHandshake(c net.Conn, ip netip.Addr) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.closed:
		return "shutting down"
	default:
	}
	switch {
	case e.shaking >= e.limits.handshakes:
		return fmt.Sprintf("%d handshakes in progress (limit %d)", e.shaking, e.limits.handshakes)
	case e.shakesBy[ip] >= e.limits.handshakesPerIP:
		return fmt.Sprintf("%d handshakes from %s in progress (limit %d per address)", e.shakesBy[ip], ip, e.limits.handshakesPerIP)
	}
	e.shaking++
	e.shakesBy[ip]++
	e.conns[c] = struct{}{}
	return ""
}

// peerKeys are a connection's entries in endpoint.authedBy: its static key
// and its source address.
func peerKeys(key []byte, ip netip.Addr) [2]string {
	return [2]string{"key " + string(key), "addr " + ip.String()}
}

// overCap says why the peer proving key from ip may not open another
// channel, or "".
func (e *endpoint) overCap(key []byte, ip netip.Addr) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.overCapLocked(key, ip)
}

func (e *endpoint) overCapLocked(key []byte, ip netip.Addr) string {
	k := peerKeys(key, ip)
	switch {
	case e.authed >= e.limits.conns:
		return fmt.Sprintf("%d connections open (limit %d)", e.authed, e.limits.conns)
	case e.authedBy[k[0]] >= e.limits.connsPerPeer:
		return fmt.Sprintf("this peer holds %d connections (limit %d per site key)", e.authedBy[k[0]], e.limits.connsPerPeer)
	case e.authedBy[k[1]] >= e.limits.connsPerIP:
		return fmt.Sprintf("%s holds %d connections (limit %d per address)", ip, e.authedBy[k[1]], e.limits.connsPerIP)
	}
	return ""
}

// endHandshake moves a connection from the handshake caps to its peer's
// (key non-nil), or untracks it (key nil). It reports why the peer is over
// its caps, if it is (the connection is then untracked).
func (e *endpoint) endHandshake(c net.Conn, ip netip.Addr, key []byte) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shaking--
	if e.shakesBy[ip]--; e.shakesBy[ip] <= 0 {
		delete(e.shakesBy, ip)
	}
	if key == nil {
		delete(e.conns, c)
		return ""
	}
	if why := e.overCapLocked(key, ip); why != "" {
		delete(e.conns, c)
		return why
	}
	e.authed++
	for _, k := range peerKeys(key, ip) {
		e.authedBy[k]++
	}
	return ""
}

// release gives an authenticated connection's place back.
func (e *endpoint) release(c net.Conn, key []byte, ip netip.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.conns, c)
	e.authed--
	for _, k := range peerKeys(key, ip) {
		if e.authedBy[k] <= 1 {
			delete(e.authedBy, k)
		} else {
			e.authedBy[k]--
		}
	}
}

func (e *endpoint) serveConn(ctx context.Context, raw net.Conn, ip netip.Addr) {
	raw.SetDeadline(time.Now().Add(handshakeTime))
	c, p, err := e.kr.respond(raw, e.self)
	raw.SetDeadline(time.Time{})
	if err != nil {
		e.endHandshake(raw, ip, nil)
		raw.Close()
		if !errors.Is(err, errPeerGone) {
			e.warn.warn("allocator endpoint: handshake refused", "peer", raw.RemoteAddr(), "err", err)
		}
		return
	}
	if why := e.overCap(p.key, ip); why != "" {
		// Still counted as a handshake: tell an RPC peer why, then close.
		e.warn.warn("allocator endpoint: refusing a connection", "peer", raw.RemoteAddr(), "site", p.site, "reason", why)
		if p.kind == kindRPC {
			refuseBusy(raw, c, fmt.Sprintf("voter %s is refusing connections from %s: %s", e.self.site, p.site, why))
		}
		e.endHandshake(raw, ip, nil)
		reset(raw)
		return
	}
	if why := e.endHandshake(raw, ip, p.key); why != "" { // filled up meanwhile
		e.warn.warn("allocator endpoint: refusing a connection", "peer", raw.RemoteAddr(), "site", p.site, "reason", why)
		reset(raw)
		return
	}
	cc := &countedConn{Conn: c, release: func() { e.release(raw, p.key, ip) }}
	if p.kind == kindRaft {
		if err := e.admitRaft(ctx, p); err != nil {
			e.warn.warn("allocator endpoint: refusing Raft", "peer", raw.RemoteAddr(), "site", p.site, "err", err)
			cc.Close()
			return
		}
		select {
		case e.raftCh <- cc: // Raft's transport owns and closes it now
		case <-e.closed:
			cc.Close()
		}
		return
	}
	defer cc.Close()
	from := caller{site: p.site, key: p.key, addr: p.addr}
	br := bufio.NewReaderSize(cc, 512)
	for {
		cc.SetReadDeadline(time.Now().Add(rpcIdle))
		b, err := readFrame(br, maxRequestFrame)
		if err != nil {
			if isOversized(err) {
				e.warn.warn("allocator endpoint: dropping a peer", "peer", raw.RemoteAddr(), "site", p.site, "err", err)
			}
			return
		}
		cc.SetReadDeadline(time.Time{})
		var resp response
		req, err := decodeRequest(b)
		if err != nil {
			resp = response{Code: codeInvalid, Msg: err.Error()}
		} else {
			resp = e.handle(ctx, req, from)
		}
		cc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := writeFrame(cc, resp, maxResponseFrame); err != nil {
			return
		}
	}
}

func isOversized(err error) bool { return err != nil && errors.Is(err, errOversized) }

func (e *endpoint) close() {
	e.once.Do(func() {
		close(e.closed)
		e.ln.Close()
		e.mu.Lock()
		for c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
	})
	e.wg.Wait()
}

// countedConn gives its endpoint place back once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// refuseBusy answers an RPC channel over its caps with code busy: the
// answer, then end of stream, then whatever the peer sent is read (up to
// 64 KB, for at most a second) so that closing does not reset the
// connection before the peer has read why.
func refuseBusy(raw, c net.Conn, msg string) {
	c.SetDeadline(time.Now().Add(time.Second))
	if writeFrame(c, response{Code: codeBusy, Msg: msg}, maxResponseFrame) != nil {
		return
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(raw, 64<<10))
}

// reset closes c with a TCP reset, so a refused peer learns at once.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// warnLimiter rate-limits the endpoint's warnings: one stranger opening
// hundreds of connections must not flood the journal. A burst of 5, then one
// line per 10 s; the next line that passes counts what was suppressed.
type warnLimiter struct {
	log        *slog.Logger
	lim        *rate.Limiter
	mu         sync.Mutex
	suppressed int
}

func newWarnLimiter(log *slog.Logger) *warnLimiter {
	return &warnLimiter{log: log, lim: rate.NewLimiter(rate.Every(10*time.Second), 5)}
}

func (w *warnLimiter) warn(msg string, args ...any) {
	w.mu.Lock()
	if !w.lim.Allow() {
		w.suppressed++
		w.mu.Unlock()
		return
	}
	if w.suppressed > 0 {
		args = append(args, "suppressed", w.suppressed)
		w.suppressed = 0
	}
	w.mu.Unlock()
	w.log.Warn(msg, args...)
}

// streamLayer adapts the endpoint to raft.StreamLayer.
type streamLayer struct {
	e *endpoint
}

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.e.raftCh:
		return c, nil
	case <-s.e.closed:
		return nil, net.ErrClosed
	}
}

func (s *streamLayer) Close() error   { return nil } // the endpoint owns the listener
func (s *streamLayer) Addr() net.Addr { return s.e.ln.Addr() }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(string(address))
	if err != nil {
		return nil, fmt.Errorf("raft peer %q has no known endpoint yet", address)
	}
	site, key, ok := s.e.voterAt(ap)
	if !ok {
		return nil, fmt.Errorf("no voter known at %s", ap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.e.dial(ctx, ap)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(min(timeout, handshakeTime)))
	sc, err := s.e.kr.initiate(c, s.e.self, kindRaft, key)
	c.SetDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("voter %s: %w", site, err)
	}
	return sc, nil
}
