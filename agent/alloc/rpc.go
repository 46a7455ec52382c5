package alloc

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Wire protocol of the allocator endpoint (one TCP port on voters):
//
//	client → server  "TFA2" nonceC[16]
//	server → client  nonceS[16] HMAC(ks, "tfsite-alloc server" nonceC nonceS)
//	client → server  HMAC(kc, "tfsite-alloc client" nonceC nonceS)
//	then, sealed     kind[1], and everything else on the connection
//
// ks and kc are the keys the server and the client sign with (their primary
// keys, derived from the gossip keys); both sides accept any key of their
// ring, so a key rotation works as memberlist's does. After the MACs every
// byte is sealed with AES-256-GCM in records (sealedConn), under keys derived
// from ks, kc and both nonces: a peer without the key is refused, and an
// on-path attacker can neither read nor alter raft or allocation traffic.
// kind 'R' hands the connection to raft's NetworkTransport; kind 'A' carries
// allocation RPC: length-prefixed (uint32 big-endian) JSON request and
// response frames. With no keys (lab mode) MACs are all-zero and checked as
// such, and nothing is sealed.

const (
	handshakeMagic = "TFA2"
	kindRaft       = 'R'
	kindRPC        = 'A'
	nonceLen       = 16
	macLen         = sha256.Size
	maxFrame       = 1 << 20
	handshakeTime  = 10 * time.Second
)

// Error codes carried in responses and FSM results.
const (
	codeExhausted     = "exhausted"
	codeConflict      = "conflict"
	codeUnknownSite   = "unknown_site"
	codeNoQuorum      = "no_quorum"
	codeNotLeader     = "not_leader"
	codeVoterMismatch = "voter_mismatch"
	codeInvalid       = "invalid"
	codeInternal      = "internal"
)

func codeOf(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrExhausted):
		return codeExhausted
	case errors.Is(err, ErrConflict):
		return codeConflict
	case errors.Is(err, ErrUnknownSite):
		return codeUnknownSite
	case errors.Is(err, ErrNoQuorum):
		return codeNoQuorum
	case errors.Is(err, ErrVoterMismatch):
		return codeVoterMismatch
	case errors.Is(err, errNotLeader):
		return codeNotLeader
	}
	return codeInternal
}

var (
	errNotLeader = errors.New("not the leader")
	errPeerGone  = errors.New("peer hung up")
)

// errorOf turns a code and message back into an error wrapping the sentinel.
func errorOf(code, msg string) error {
	var s error
	switch code {
	case "":
		return nil
	case codeExhausted:
		s = ErrExhausted
	case codeConflict:
		s = ErrConflict
	case codeUnknownSite:
		s = ErrUnknownSite
	case codeNoQuorum:
		s = ErrNoQuorum
	case codeVoterMismatch:
		s = ErrVoterMismatch
	case codeNotLeader:
		s = errNotLeader
	default:
		return fmt.Errorf("allocator: %s: %s", code, msg)
	}
	if msg == "" {
		return s
	}
	return fmt.Errorf("%w: %s", s, msg)
}

// RPC operations.
const (
	rpcAllocate = "allocate" // obtain or re-assert (Claim) an allocation
	rpcRelease  = "release"
	rpcTable    = "table"
)

type request struct {
	Op        string      `json:"op"`
	Site      string      `json:"site"`
	Owner     string      `json:"owner,omitempty"`
	Claim     *Allocation `json:"claim,omitempty"`
	VoterHash string      `json:"voter_hash"`
}

type response struct {
	Alloc  *Allocation  `json:"alloc,omitempty"`
	Table  []Allocation `json:"table,omitempty"`
	Code   string       `json:"code,omitempty"`
	Msg    string       `json:"msg,omitempty"`
	Leader string       `json:"leader,omitempty"` // with code not_leader
	// LeaderEndpoint is the leader's allocator endpoint as the answering
	// voter knows it (with code not_leader), for a site whose own gossip
	// view lacks the leader (e.g. it once declared it dead under load).
	LeaderEndpoint netip.AddrPort `json:"leaderEndpoint,omitzero"`
}

func decodeRequest(b []byte) (request, error) {
	var r request
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding allocation request: %w", err)
	}
	switch r.Op {
	case rpcAllocate, rpcRelease:
		if err := ValidateSiteName(r.Site); err != nil {
			return r, fmt.Errorf("allocation request: %w", err)
		}
	case rpcTable:
	default:
		return r, fmt.Errorf("allocation request: unknown op %q", r.Op)
	}
	if r.Op == rpcAllocate && r.Owner == "" {
		return r, errors.New("allocation request: missing owner")
	}
	if r.Claim != nil {
		if err := r.Claim.Validate(); err != nil {
			return r, fmt.Errorf("allocation request claim: %w", err)
		}
		if r.Claim.Site != r.Site {
			return r, fmt.Errorf("allocation request: claim for %q in request for %q", r.Claim.Site, r.Site)
		}
	}
	return r, nil
}

func decodeResponse(b []byte) (response, error) {
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding allocation response: %w", err)
	}
	if r.Alloc != nil {
		if err := r.Alloc.Validate(); err != nil {
			return r, fmt.Errorf("allocation response: %w", err)
		}
	}
	return r, nil
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(b), maxFrame)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(append(hdr[:], b...)); err != nil {
		return err
	}
	return nil
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, fmt.Errorf("frame of %d bytes exceeds %d", n, maxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// keyring derives the allocator's MAC keys from the gossip keys, so the
// same secret never serves two protocols directly.
type keyring [][]byte

func newKeyring(keys [][]byte) keyring {
	var kr keyring
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte("tfsite allocator endpoint v1"))
		kr = append(kr, m.Sum(nil))
	}
	return kr
}

func (kr keyring) mac(key []byte, label string, nc, ns []byte) []byte {
	if key == nil {
		return make([]byte, macLen)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(nc)
	m.Write(ns)
	return m.Sum(nil)
}

// sign MACs with the primary key and returns the key it used (nil without
// keys).
func (kr keyring) sign(label string, nc, ns []byte) (mac, key []byte) {
	if len(kr) > 0 {
		key = kr[0]
	}
	return kr.mac(key, label, nc, ns), key
}

// verify reports whether got is the MAC of any key of the ring and returns
// that key (nil without keys).
func (kr keyring) verify(label string, nc, ns, got []byte) ([]byte, bool) {
	if len(kr) == 0 {
		return nil, hmac.Equal(got, make([]byte, macLen))
	}
	for _, k := range kr {
		if hmac.Equal(got, kr.mac(k, label, nc, ns)) {
			return k, true
		}
	}
	return nil, false
}

// seal wraps conn after a handshake signed with ks (server) and kc
// (client); without keys it is conn itself.
func seal(conn net.Conn, server bool, ks, kc, nc, ns []byte) (net.Conn, error) {
	if ks == nil || kc == nil {
		return conn, nil
	}
	c2s, s2c := sessionKeys(ks, kc, nc, ns)
	if server {
		return newSealedConn(conn, c2s, s2c)
	}
	return newSealedConn(conn, s2c, c2s)
}

const (
	labelServer = "tfsite-alloc server"
	labelClient = "tfsite-alloc client"
)

// clientHandshake authenticates conn to the server, announces kind and
// returns the sealed connection to use from now on. The deadline is the
// caller's (set on conn) or handshakeTime.
func (kr keyring) clientHandshake(conn net.Conn, kind byte) (net.Conn, error) {
	conn.SetDeadline(time.Now().Add(handshakeTime))
	defer conn.SetDeadline(time.Time{})
	return kr.clientHandshakeNoDeadline(conn, kind)
}

func (kr keyring) clientHandshakeNoDeadline(conn net.Conn, kind byte) (net.Conn, error) {
	nc := make([]byte, nonceLen)
	rand.Read(nc)
	if _, err := conn.Write(append([]byte(handshakeMagic), nc...)); err != nil {
		return nil, fmt.Errorf("allocator handshake: %w", err)
	}
	buf := make([]byte, nonceLen+macLen)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, fmt.Errorf("allocator handshake with %s: %w (wrong key, or not a tfsite voter of this version)", conn.RemoteAddr(), err)
	}
	ns, smac := buf[:nonceLen], buf[nonceLen:]
	ks, ok := kr.verify(labelServer, nc, ns, smac)
	if !ok {
		return nil, fmt.Errorf("%w: voter %s does not hold our key", ErrAuth, conn.RemoteAddr())
	}
	cmac, kc := kr.sign(labelClient, nc, ns)
	if _, err := conn.Write(cmac); err != nil {
		return nil, fmt.Errorf("allocator handshake: %w", err)
	}
	sc, err := seal(conn, false, ks, kc, nc, ns)
	if err != nil {
		return nil, err
	}
	if _, err := sc.Write([]byte{kind}); err != nil {
		return nil, fmt.Errorf("allocator handshake: %w", err)
	}
	return sc, nil
}

// serverHandshake authenticates a client and returns the sealed connection
// and the connection kind.
func (kr keyring) serverHandshake(conn net.Conn) (net.Conn, byte, error) {
	conn.SetDeadline(time.Now().Add(handshakeTime))
	defer conn.SetDeadline(time.Time{})
	buf := make([]byte, len(handshakeMagic)+nonceLen)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, 0, err
	}
	if string(buf[:len(handshakeMagic)]) != handshakeMagic {
		return nil, 0, fmt.Errorf("%s: not a tfsite allocator client of this version (magic %q, want %q)", conn.RemoteAddr(), buf[:len(handshakeMagic)], handshakeMagic)
	}
	nc := buf[len(handshakeMagic):]
	ns := make([]byte, nonceLen)
	rand.Read(ns)
	smac, ks := kr.sign(labelServer, nc, ns)
	if _, err := conn.Write(append(ns, smac...)); err != nil {
		return nil, 0, err
	}
	cmac := make([]byte, macLen)
	if _, err := io.ReadFull(conn, cmac); err != nil {
		// Usually a client that gave up (overload) or found our key wrong.
		return nil, 0, fmt.Errorf("%w: %w: %s closed during handshake: %v", ErrAuth, errPeerGone, conn.RemoteAddr(), err)
	}
	kc, ok := kr.verify(labelClient, nc, ns, cmac)
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s does not hold our key", ErrAuth, conn.RemoteAddr())
	}
	sc, err := seal(conn, true, ks, kc, nc, ns)
	if err != nil {
		return nil, 0, err
	}
	kind := make([]byte, 1)
	if _, err := io.ReadFull(sc, kind); err != nil {
		return nil, 0, fmt.Errorf("%w: %w: %s: %v", ErrAuth, errPeerGone, conn.RemoteAddr(), err)
	}
	return sc, kind[0], nil
}

// endpoint is the voter's listener: it authenticates every connection and
// routes it to raft (through streamLayer) or to the RPC handler.
type endpoint struct {
	ln      net.Listener
	kr      keyring
	raftCh  chan net.Conn
	handle  func(ctx context.Context, req request) response
	onError func(error)
	dial    func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
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
			e.onError(fmt.Errorf("allocator endpoint accept: %w", err))
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-e.closed:
				return
			}
		}
		if !e.track(c) {
			c.Close()
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.serveConn(ctx, c)
		}()
	}
}

func (e *endpoint) track(c net.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.closed:
		return false
	default:
	}
	e.conns[c] = struct{}{}
	return true
}

func (e *endpoint) untrack(c net.Conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
}

func (e *endpoint) serveConn(ctx context.Context, raw net.Conn) {
	c, kind, err := e.kr.serverHandshake(raw)
	if err != nil {
		if errors.Is(err, ErrAuth) && !errors.Is(err, errPeerGone) {
			e.onError(err) // a peer with the wrong key: worth a warning
		}
		e.untrack(raw)
		raw.Close()
		return
	}
	switch kind {
	case kindRaft:
		e.untrack(raw) // raft owns it now; the transport closes it
		select {
		case e.raftCh <- c:
		case <-e.closed:
			c.Close()
		}
		return
	case kindRPC:
	default:
		e.onError(fmt.Errorf("allocator endpoint: %s asked for unknown kind %q", c.RemoteAddr(), kind))
		e.untrack(raw)
		c.Close()
		return
	}
	defer func() { e.untrack(raw); c.Close() }()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		b, err := readFrame(br)
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
		var resp response
		req, err := decodeRequest(b)
		if err != nil {
			resp = response{Code: codeInvalid, Msg: err.Error()}
		} else {
			resp = e.handle(ctx, req)
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := writeFrame(c, resp); err != nil {
			return
		}
	}
}

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
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.e.dial(ctx, ap)
	if err != nil {
		return nil, err
	}
	sc, err := s.e.kr.clientHandshake(c, kindRaft)
	if err != nil {
		c.Close()
		return nil, err
	}
	return sc, nil
}

// call performs one RPC to a voter endpoint.
func call(ctx context.Context, dial func(context.Context, netip.AddrPort) (net.Conn, error), kr keyring, addr netip.AddrPort, req request) (response, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return response{}, err
	}
	defer c.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(handshakeTime)
	}
	c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sc, err := kr.clientHandshakeNoDeadline(c, kindRPC)
	if err != nil {
		return response{}, err
	}
	if err := writeFrame(sc, req); err != nil {
		return response{}, fmt.Errorf("sending to voter %s: %w", addr, err)
	}
	b, err := readFrame(bufio.NewReader(sc))
	if err != nil {
		return response{}, fmt.Errorf("reading from voter %s: %w", addr, err)
	}
	return decodeResponse(b)
}

func defaultDial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr.String())
}
