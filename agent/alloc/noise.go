package alloc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/flynn/noise"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
)

// The allocator channel. Every connection to a voter's endpoint (Raft and
// allocation RPC) starts with a Noise handshake (github.com/flynn/noise) and
// then carries Noise transport messages:
//
//	initiator → responder  "TFA3" keyID[8]                  prologue, in the clear
//	initiator → responder  len[2] e
//	responder → initiator  len[2] e, ee, s, es
//	initiator → responder  len[2] s, se, psk + hello{kind, site}
//	both ways              len[2] transport message (≤ 16 KB of plaintext)
//
// The pattern is Noise_XXpsk3_25519_AESGCM_SHA256. Each side proves its
// static key (every site has its own, identity.go) and the fleet key: the
// PSK is derived from the gossip key that keyID names, so a responder picks
// the key of its ring the initiator used (key rotation: the initiator uses
// its primary key, the responder accepts any key of its ring). Ephemeral
// Diffie-Hellman gives forward secrecy. The initiator checks the responder's
// static key against the voter's key it knows (gossip, or the allocation
// table); the responder learns the initiator's static key and site name and
// leaves the decision to its caller (endpoint.go, authz.go). Without fleet
// keys (insecure lab mode) the pattern is Noise_XX and keyID is zero: still
// encrypted and bound to site keys, but anyone may connect.

const (
	protoMagic = "TFA3"
	keyIDLen   = 8
	// kind, in the hello: what the connection carries.
	kindRaft = 'R' // handed to Raft's NetworkTransport
	kindRPC  = 'A' // allocation RPC frames (rpc.go)
	// helloVersion is the first byte of the hello payload.
	helloVersion = 1
	// maxHandshakeMsg bounds a handshake message (ours are under 200 bytes).
	maxHandshakeMsg = 512
	// maxRecord is the largest plaintext in one transport message; with the
	// 16-byte tag it stays far below Noise's 65535-byte message limit.
	maxRecord = 16 << 10
	// handshakeTime bounds a whole handshake.
	handshakeTime = 10 * time.Second
)

var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)

// fleetKey is one gossip key as the channel uses it: a PSK and the public
// id that names it in the prologue, both derived from the gossip key so the
// same secret never serves two protocols directly.
type fleetKey struct {
	id  [keyIDLen]byte
	psk []byte
}

// keyring holds the fleet keys, primary first; empty means insecure.
type keyring []fleetKey

func newKeyring(keys [][]byte) keyring {
	kr := make(keyring, 0, len(keys))
	for _, k := range keys {
		var fk fleetKey
		copy(fk.id[:], prf(k, "tfsite allocator key id v3"))
		fk.psk = prf(k, "tfsite allocator psk v3")
		kr = append(kr, fk)
	}
	return kr
}

func prf(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func (kr keyring) find(id [keyIDLen]byte) (*fleetKey, bool) {
	for i := range kr {
		if hmac.Equal(kr[i].id[:], id[:]) {
			return &kr[i], true
		}
	}
	return nil, false
}

// config is the Noise configuration of one side; fk nil means no PSK.
func handshakeConfig(initiator bool, self identity, fk *fleetKey) noise.Config {
	var id [keyIDLen]byte
	c := noise.Config{CipherSuite: cipherSuite, Pattern: noise.HandshakeXX, Initiator: initiator, StaticKeypair: self.key}
	if fk != nil {
		id = fk.id
		c.PresharedKey, c.PresharedKeyPlacement = fk.psk, 3
	}
	c.Prologue = append([]byte(protoMagic), id[:]...)
	return c
}

// peerInfo is what the responder learnt about the initiator.
type peerInfo struct {
	site string
	key  []byte // static public key, proven in the handshake
	addr netip.AddrPort
	kind byte
}

var (
	errPeerGone = errors.New("peer hung up")
	errNotOurs  = errors.New("not a tfsite allocator client of this version")
)

// initiate runs the initiator's side on conn as self, announcing kind, and
// accepts the responder only if it proves the static key want. The deadline
// is the caller's. It returns the channel to use from now on.
func (kr keyring) initiate(conn net.Conn, self identity, kind byte, want []byte) (net.Conn, error) {
	if len(want) != site.KeyLen {
		return nil, fmt.Errorf("%w: no key known for the voter at %s (it publishes none in gossip)", ErrAuth, conn.RemoteAddr())
	}
	var fk *fleetKey
	if len(kr) > 0 {
		fk = &kr[0]
	}
	cfg := handshakeConfig(true, self, fk)
	hs, err := noise.NewHandshakeState(cfg)
	if err != nil {
		return nil, fmt.Errorf("allocator handshake: %w", err)
	}
	msg1, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("allocator handshake: %w", err)
	}
	if _, err := conn.Write(appendMsg(cfg.Prologue, msg1)); err != nil {
		return nil, fmt.Errorf("allocator handshake with %s: %w", conn.RemoteAddr(), err)
	}
	msg2, err := readMsg(conn, maxHandshakeMsg)
	if err != nil {
		return nil, fmt.Errorf("allocator handshake with %s: %w (wrong key, or not a tfsite voter of this version)", conn.RemoteAddr(), noEOF(err))
	}
	if _, _, _, err := hs.ReadMessage(nil, msg2); err != nil {
		return nil, fmt.Errorf("%w: voter %s: handshake message 2: %v", ErrAuth, conn.RemoteAddr(), err)
	}
	if got := hs.PeerStatic(); !sameKey(got, want) {
		return nil, fmt.Errorf("%w: the voter at %s proved key %s, not the voter's key %s (gossip or the allocation table)", ErrAuth, conn.RemoteAddr(), shortKey(got), shortKey(want))
	}
	msg3, send, recv, err := hs.WriteMessage(nil, encodeHello(kind, self.site))
	if err != nil {
		return nil, fmt.Errorf("allocator handshake: %w", err)
	}
	if _, err := conn.Write(appendMsg(nil, msg3)); err != nil {
		return nil, fmt.Errorf("allocator handshake with %s: %w", conn.RemoteAddr(), err)
	}
	return newNoiseConn(conn, recv, send), nil
}

// respond runs the responder's side on conn as self (deadline: the
// caller's). Errors wrap ErrAuth when the peer failed to prove the fleet key,
// errPeerGone when it hung up, errNotOurs when it does not speak this protocol.
func (kr keyring) respond(conn net.Conn, self identity) (net.Conn, peerInfo, error) {
	from := conn.RemoteAddr()
	hdr := make([]byte, len(protoMagic)+keyIDLen)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return nil, peerInfo{}, fmt.Errorf("%w: %s: %v", errPeerGone, from, err)
	}
	if string(hdr[:len(protoMagic)]) != protoMagic {
		return nil, peerInfo{}, fmt.Errorf("%w: %s sent %q, want %q", errNotOurs, from, hdr[:len(protoMagic)], protoMagic)
	}
	var id [keyIDLen]byte
	copy(id[:], hdr[len(protoMagic):])
	var fk *fleetKey
	switch {
	case len(kr) == 0 && id != [keyIDLen]byte{}:
		return nil, peerInfo{}, fmt.Errorf("%w: %s uses a fleet key, this voter has none (insecure)", ErrAuth, from)
	case len(kr) > 0 && id == [keyIDLen]byte{}:
		return nil, peerInfo{}, fmt.Errorf("%w: %s has no fleet key (an insecure agent)", ErrAuth, from)
	case len(kr) > 0:
		var ok bool
		if fk, ok = kr.find(id); !ok {
			return nil, peerInfo{}, fmt.Errorf("%w: %s does not hold our key (unknown key id)", ErrAuth, from)
		}
	}
	hs, err := noise.NewHandshakeState(handshakeConfig(false, self, fk))
	if err != nil {
		return nil, peerInfo{}, fmt.Errorf("allocator handshake: %w", err)
	}
	msg1, err := readMsg(conn, maxHandshakeMsg)
	if err != nil {
		return nil, peerInfo{}, fmt.Errorf("%w: %s: %v", errPeerGone, from, err)
	}
	if _, _, _, err := hs.ReadMessage(nil, msg1); err != nil {
		return nil, peerInfo{}, fmt.Errorf("%w: %s: handshake message 1: %v", ErrAuth, from, err)
	}
	msg2, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, peerInfo{}, fmt.Errorf("allocator handshake: %w", err)
	}
	if _, err := conn.Write(appendMsg(nil, msg2)); err != nil {
		return nil, peerInfo{}, fmt.Errorf("%w: %s: %v", errPeerGone, from, err)
	}
	msg3, err := readMsg(conn, maxHandshakeMsg)
	if err != nil {
		// Usually a client that gave up (overload) or did not accept our key.
		return nil, peerInfo{}, fmt.Errorf("%w: %s closed during the handshake: %v", errPeerGone, from, err)
	}
	hello, recv, send, err := hs.ReadMessage(nil, msg3)
	if err != nil {
		return nil, peerInfo{}, fmt.Errorf("%w: %s does not hold our key (handshake message 3: %v)", ErrAuth, from, err)
	}
	kind, site, err := decodeHello(hello)
	if err != nil {
		return nil, peerInfo{}, fmt.Errorf("%w: %s: %v", ErrAuth, from, err)
	}
	p := peerInfo{site: site, key: append([]byte(nil), hs.PeerStatic()...), kind: kind}
	if ta, ok := from.(*net.TCPAddr); ok {
		p.addr = ta.AddrPort()
		p.addr = netip.AddrPortFrom(p.addr.Addr().Unmap(), p.addr.Port())
	}
	return newNoiseConn(conn, recv, send), p, nil
}

// encodeHello is the initiator's last handshake payload: version, kind and
// its site name, authenticated by its static key and the fleet key.
func encodeHello(kind byte, site string) []byte {
	return append([]byte{helloVersion, kind, byte(len(site))}, site...)
}

// decodeHello parses a hello; bytes after the site name (a newer agent's
// fields) are ignored.
func decodeHello(b []byte) (kind byte, site string, err error) {
	if len(b) < 3 || len(b) < 3+int(b[2]) {
		return 0, "", errors.New("hello truncated")
	}
	if b[0] != helloVersion {
		return 0, "", fmt.Errorf("hello version %d, this agent speaks %d", b[0], helloVersion)
	}
	kind, site = b[1], string(b[3:3+int(b[2])])
	if kind != kindRaft && kind != kindRPC {
		return 0, "", fmt.Errorf("hello asks for unknown kind %q", kind)
	}
	if err := sitename.Validate(site); err != nil {
		return 0, "", fmt.Errorf("hello: %w", err)
	}
	return kind, site, nil
}

// appendMsg appends msg with its 2-byte length.
func appendMsg(out, msg []byte) []byte {
	out = binary.BigEndian.AppendUint16(out, uint16(len(msg)))
	return append(out, msg...)
}

// readMsg reads one length-prefixed handshake message of at most max bytes.
func readMsg(r io.Reader, max int) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > max {
		return nil, fmt.Errorf("handshake message of %d bytes exceeds %d", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, noEOF(err)
	}
	return b, nil
}

// noiseConn carries everything after the handshake as Noise transport
// messages: [uint16 length][ciphertext of ≤ maxRecord bytes + 16-byte tag],
// each direction with its own key and a message counter as nonce. A
// modified, dropped, replayed or reordered message fails to open and ends
// the connection.
type noiseConn struct {
	net.Conn

	rmu        sync.Mutex
	r          *noise.CipherState
	rraw, rbuf []byte // rbuf: opened plaintext not yet read (inside rraw)

	wmu  sync.Mutex
	w    *noise.CipherState
	wraw []byte
}

func newNoiseConn(c net.Conn, read, write *noise.CipherState) *noiseConn {
	return &noiseConn{Conn: c, r: read, w: write}
}

const tagLen = 16

func (c *noiseConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxRecord)]
		var err error
		c.wraw, err = c.w.Encrypt(append(c.wraw[:0], 0, 0), nil, chunk)
		if err != nil {
			return written, fmt.Errorf("sealing a record: %w", err)
		}
		binary.BigEndian.PutUint16(c.wraw, uint16(len(c.wraw)-2))
		if _, err := c.Conn.Write(c.wraw); err != nil {
			return written, err
		}
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

func (c *noiseConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.rbuf) == 0 {
		var hdr [2]byte
		if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
			return 0, err // io.EOF at a record boundary is a clean close
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n < tagLen || n > maxRecord+tagLen {
			return 0, fmt.Errorf("%w: %s sent a record of %d bytes (allowed %d–%d)", ErrAuth, c.RemoteAddr(), n, tagLen, maxRecord+tagLen)
		}
		if cap(c.rraw) < n {
			c.rraw = make([]byte, n)
		}
		raw := c.rraw[:n]
		if _, err := io.ReadFull(c.Conn, raw); err != nil {
			return 0, fmt.Errorf("reading a record from %s: %w", c.RemoteAddr(), noEOF(err))
		}
		pt, err := c.r.Decrypt(raw[:0], nil, raw)
		if err != nil {
			return 0, fmt.Errorf("%w: record %d from %s failed authentication (modified in transit)", ErrAuth, c.r.Nonce(), c.RemoteAddr())
		}
		c.rbuf = pt
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
