package alloc

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
)

// maxRecord is the largest plaintext in one sealed record.
const maxRecord = 16 << 10

// sessionKeys derives the two directions' AES-256-GCM keys of one
// connection from the keys both sides signed the handshake with (ks by the
// server, kc by the client: they differ while a key rotation is under way)
// and the connection's two fresh nonces, so every connection has its own
// keys and counter nonces never repeat under a key.
func sessionKeys(ks, kc, nc, ns []byte) (c2s, s2c []byte) {
	inner := hmac.New(sha256.New, kc)
	inner.Write([]byte("tfsite-alloc session"))
	inner.Write(nc)
	inner.Write(ns)
	m := hmac.New(sha256.New, ks)
	m.Write([]byte("tfsite-alloc session"))
	m.Write(nc)
	m.Write(ns)
	m.Write(inner.Sum(nil))
	master := m.Sum(nil)
	dir := func(label string) []byte {
		h := hmac.New(sha256.New, master)
		h.Write([]byte(label))
		return h.Sum(nil)
	}
	return dir("client to server"), dir("server to client")
}

// sealedConn encrypts and authenticates everything after the handshake:
// records of [uint32 length][AES-GCM ciphertext of ≤ 16 KB], each
// direction with its own key and a record counter as nonce. A modified,
// dropped, replayed or reordered record fails to open and ends the
// connection.
type sealedConn struct {
	net.Conn

	rmu        sync.Mutex
	r          cipher.AEAD
	rseq       uint64
	rraw, rbuf []byte // rbuf: opened plaintext not yet read (inside rraw)

	wmu  sync.Mutex
	w    cipher.AEAD
	wseq uint64
	wraw []byte
}

func newSealedConn(c net.Conn, readKey, writeKey []byte) (*sealedConn, error) {
	r, err := gcm(readKey)
	if err != nil {
		return nil, err
	}
	w, err := gcm(writeKey)
	if err != nil {
		return nil, err
	}
	return &sealedConn{Conn: c, r: r, w: w}, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("allocator channel cipher: %w", err)
	}
	return cipher.NewGCM(b)
}

func recordNonce(seq uint64) []byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[4:], seq)
	return n[:]
}

func (c *sealedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxRecord)]
		c.wraw = append(c.wraw[:0], 0, 0, 0, 0)
		c.wraw = c.w.Seal(c.wraw, recordNonce(c.wseq), chunk, nil)
		binary.BigEndian.PutUint32(c.wraw, uint32(len(c.wraw)-4))
		c.wseq++
		if _, err := c.Conn.Write(c.wraw); err != nil {
			return written, err
		}
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

func (c *sealedConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.rbuf) == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
			return 0, err // io.EOF at a record boundary is a clean close
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n < c.r.Overhead() || n > maxRecord+c.r.Overhead() {
			return 0, fmt.Errorf("%w: %s sent a record of %d bytes (allowed %d–%d)", ErrAuth, c.RemoteAddr(), n, c.r.Overhead(), maxRecord+c.r.Overhead())
		}
		if cap(c.rraw) < n {
			c.rraw = make([]byte, n)
		}
		raw := c.rraw[:n]
		if _, err := io.ReadFull(c.Conn, raw); err != nil {
			return 0, fmt.Errorf("reading a record from %s: %w", c.RemoteAddr(), noEOF(err))
		}
		pt, err := c.r.Open(raw[:0], recordNonce(c.rseq), raw, nil)
		if err != nil {
			return 0, fmt.Errorf("%w: record %d from %s failed authentication (modified in transit, or not our key)", ErrAuth, c.rseq, c.RemoteAddr())
		}
		c.rseq++
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
