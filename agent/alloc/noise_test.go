package alloc

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/tfsite/tfsite/agent/sitename"
)

// newIdentity is a fresh site identity, as loadOrCreateIdentity makes one.
func newIdentity(t testing.TB, site string) identity {
	t.Helper()
	k, err := cipherSuite.GenerateKeypair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return identity{site: site, key: k}
}

// tap forwards one TCP connection to target, records what the client sent
// and flips the bit at offset flip of the client's stream (-1: none).
type tap struct {
	ln   net.Listener
	mu   sync.Mutex
	sent bytes.Buffer
}

func startTap(t *testing.T, target string, flip int) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		go func() { io.Copy(c, s); c.Close() }()
		buf := make([]byte, 1)
		for off := 0; ; off++ {
			if _, err := c.Read(buf); err != nil {
				s.Close()
				return
			}
			tp.mu.Lock()
			tp.sent.Write(buf)
			tp.mu.Unlock()
			if off == flip {
				buf[0] ^= 0x01
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	}()
	return tp
}

func (tp *tap) wire() []byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Clone(tp.sent.Bytes())
}

// serverResult is what the responder side of a test connection saw.
type serverResult struct {
	peer peerInfo
	err  error
}

// echoServer accepts one connection, runs the responder's handshake as
// self and echoes what it reads; the handshake's outcome, then the echo's
// error, are reported on the channel.
func echoServer(t *testing.T, kr keyring, self identity) (string, <-chan serverResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	res := make(chan serverResult, 2)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			res <- serverResult{err: err}
			return
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		c, p, err := kr.respond(raw, self)
		res <- serverResult{p, err}
		if err != nil {
			return
		}
		_, err = io.Copy(c, c)
		res <- serverResult{p, err}
	}()
	return ln.Addr().String(), res
}

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestChannelCarriesDataItDoesNotShow(t *testing.T) {
	for name, rings := range map[string][2]keyring{
		"same key": {newKeyring([][]byte{key(1)}), newKeyring([][]byte{key(1)})},
		// During a rotation the two sides have different primaries: the
		// initiator uses its primary, the responder accepts any key of its
		// ring.
		"rotation": {newKeyring([][]byte{key(2), key(1)}), newKeyring([][]byte{key(1), key(2)})},
	} {
		t.Run(name, func(t *testing.T) {
			voter, site := newIdentity(t, "v"), newIdentity(t, "site-b")
			addr, res := echoServer(t, rings[0], voter)
			tp := startTap(t, addr, -1)
			c, err := rings[1].initiate(dialT(t, tp.ln.Addr().String()), site, kindRPC, voter.key.Public)
			if err != nil {
				t.Fatal(err)
			}
			hs := <-res
			if hs.err != nil || hs.peer.site != "site-b" || hs.peer.kind != kindRPC || !sameKey(hs.peer.key, site.key.Public) {
				t.Fatalf("responder saw %+v, %v; want site-b, kind A, the site's key", hs.peer, hs.err)
			}
			// 100 KB: several records, one Write.
			msg := bytes.Repeat([]byte("allocation site-b asn 64513 "), 100<<10/28)
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reading the echo: %v", err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("echo differs from what was sent")
			}
			if w := tp.wire(); bytes.Contains(w, []byte("site-b")) || bytes.Contains(w, []byte("allocation")) || len(w) < len(msg) {
				t.Fatalf("the wire (%d bytes) shows the site name or the plaintext, or lacks it", len(w))
			}
		})
	}
}

func TestChannelRefusesAlteredRecords(t *testing.T) {
	kr := newKeyring([][]byte{key(1)})
	voter, site := newIdentity(t, "v"), newIdentity(t, "s1")
	addr, res := echoServer(t, kr, voter)
	// Client stream: prologue (12), message 1 (2 + e 32 + the empty
	// payload's tag 16: with a PSK, e is mixed into the key), message 3 (2
	// + s 32+16 + hello 5+16), then the data record (2 + ciphertext): flip
	// a bit inside its ciphertext.
	msg3 := 32 + 16 + len(encodeHello(kindRPC, "s1")) + 16
	tp := startTap(t, addr, 12+2+48+2+msg3+2+3)
	c, err := kr.initiate(dialT(t, tp.ln.Addr().String()), site, kindRPC, voter.key.Public)
	if err != nil {
		t.Fatal(err)
	}
	if hs := <-res; hs.err != nil {
		t.Fatal(hs.err)
	}
	if _, err := c.Write([]byte("release site-b")); err != nil {
		t.Fatal(err)
	}
	if r := <-res; !errors.Is(r.err, ErrAuth) {
		t.Fatalf("responder read an altered record: err = %v, want ErrAuth", r.err)
	}
}

func TestNoiseConnRejectsOversizedRecords(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var k [32]byte
	nc := newNoiseConn(a, noise.UnsafeNewCipherState(cipherSuite, k, 0), noise.UnsafeNewCipherState(cipherSuite, k, 0))
	go b.Write([]byte{0xff, 0xff})
	if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, ErrAuth) {
		t.Fatalf("oversized record header: %v, want ErrAuth", err)
	}
}

// TestHandshakeOutcomes: who is refused, on which side, and why. A voter
// refuses a fleet key it does not hold at the prologue, before any
// Diffie-Hellman work; the initiator then sees the connection reset.
func TestHandshakeOutcomes(t *testing.T) {
	k1, k2 := newKeyring([][]byte{key(1)}), newKeyring([][]byte{key(2)})
	voter, site, other := newIdentity(t, "v"), newIdentity(t, "s"), newIdentity(t, "x")
	for _, tc := range []struct {
		name           string
		server, client keyring
		want           []byte // the key the client expects of the voter
		serverErr      error  // nil: the server accepts
		clientErr      error  // nil: the client accepts (with clientFails unset)
		clientFails    bool
	}{
		{name: "same key", server: k1, client: k1, want: voter.key.Public},
		{name: "insecure both", server: nil, client: nil, want: voter.key.Public},
		{name: "wrong fleet key", server: k1, client: k2, want: voter.key.Public, serverErr: ErrAuth, clientFails: true},
		{name: "keyless client", server: k1, client: nil, want: voter.key.Public, serverErr: ErrAuth, clientFails: true},
		{name: "keyed client, insecure voter", server: nil, client: k1, want: voter.key.Public, serverErr: ErrAuth, clientFails: true},
		// Not the voter the client meant: refused before the client proves
		// the fleet key or names itself.
		{name: "impostor voter", server: k1, client: k1, want: other.key.Public, serverErr: errPeerGone, clientErr: ErrAuth, clientFails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, res := echoServer(t, tc.server, voter)
			c := dialT(t, addr)
			_, cerr := tc.client.initiate(c, site, kindRPC, tc.want)
			if tc.clientFails != (cerr != nil) || (tc.clientErr != nil && !errors.Is(cerr, tc.clientErr)) {
				t.Errorf("client: %v", cerr)
			}
			if cerr != nil {
				c.Close()
			}
			s := <-res
			if (tc.serverErr == nil) != (s.err == nil) || !errors.Is(s.err, tc.serverErr) {
				t.Errorf("server: %v, want %v", s.err, tc.serverErr)
			}
		})
	}
}

func TestHelloRoundTrip(t *testing.T) {
	kind, site, err := decodeHello(encodeHello(kindRaft, "edge-1"))
	if err != nil || kind != kindRaft || site != "edge-1" {
		t.Fatalf("%q %q %v", kind, site, err)
	}
	for _, bad := range [][]byte{nil, {1, 'A'}, {2, 'A', 1, 'a'}, {1, 'Z', 1, 'a'}, {1, 'A', 1, 'A'}, {1, 'A', 5, 'a'}} {
		if _, _, err := decodeHello(bad); err == nil {
			t.Errorf("decodeHello(%q) accepted", bad)
		}
	}
}

// bufConn is a net.Conn over an in-memory reader and writer.
type bufConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (c bufConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c bufConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c bufConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7947} }

// FuzzNoiseConnRead feeds arbitrary bytes to the record reader: it must
// return an error or plaintext that was sealed under the key, never panic.
func FuzzNoiseConnRead(f *testing.F) {
	k := [32]byte{7}
	var sealed bytes.Buffer
	w := newNoiseConn(bufConn{w: &sealed}, nil, noise.UnsafeNewCipherState(cipherSuite, k, 0))
	w.Write([]byte("allocate "))
	w.Write([]byte("site-b")) // two records
	f.Add(sealed.Bytes())
	f.Add([]byte{0, 16})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newNoiseConn(bufConn{r: bytes.NewReader(b)}, noise.UnsafeNewCipherState(cipherSuite, k, 0), nil)
		out, err := io.ReadAll(c)
		if len(out) > len(b) {
			t.Fatalf("read %d bytes of plaintext from %d on the wire", len(out), len(b))
		}
		if err == nil && !bytes.HasPrefix([]byte("allocate site-b"), out) {
			t.Fatalf("opened %q, which was never sealed", out)
		}
	})
}

// FuzzRespond feeds arbitrary bytes to a voter's side of the handshake as
// the initiator's stream: it must refuse them with an error, never panic or
// accept (no input forges a handshake with a fresh ephemeral key).
func FuzzRespond(f *testing.F) {
	kr := newKeyring([][]byte{key(1)})
	voter := newIdentity(f, "v")
	// A real initiator's first flight, as a seed.
	var first bytes.Buffer
	kr.initiate(bufConn{r: bytes.NewReader(nil), w: &first}, newIdentity(f, "s"), kindRPC, voter.key.Public)
	f.Add(first.Bytes())
	f.Add(append([]byte(protoMagic), make([]byte, 8)...))
	f.Add(append(append([]byte(protoMagic), kr[0].id[:]...), 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _, err := kr.respond(bufConn{r: bytes.NewReader(b), w: io.Discard}, voter)
		if err == nil || c != nil {
			t.Fatalf("accepted a forged handshake: %v", err)
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	f.Add(encodeHello(kindRPC, "site-b"))
	f.Add([]byte{1, 'R', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, site, err := decodeHello(b)
		if err != nil {
			return
		}
		if (kind != kindRaft && kind != kindRPC) || sitename.Validate(site) != nil {
			t.Fatalf("accepted kind %q site %q", kind, site)
		}
	})
}

// BenchmarkHandshake: one initiator+responder handshake over loopback TCP
// plus one sealed one-byte round trip, both sides in this process: what a
// site and a voter pay together per allocation request (docs/benchmarks.md).
func BenchmarkHandshake(b *testing.B) {
	kr := newKeyring([][]byte{key(1)})
	voter, site := newIdentity(b, "v"), newIdentity(b, "s")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc, _, err := kr.respond(c, voter)
				if err != nil {
					return
				}
				buf := make([]byte, 1)
				if _, err := sc.Read(buf); err == nil {
					sc.Write(buf)
				}
			}()
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		sc, err := kr.initiate(c, site, kindRPC, voter.key.Public)
		if err != nil {
			b.Fatal(err)
		}
		sc.Write([]byte{1})
		if _, err := sc.Read(make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
