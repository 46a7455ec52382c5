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
)

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

// echoServer accepts one connection, runs the server handshake and echoes
// what it reads; its first error is reported on the channel.
func echoServer(t *testing.T, kr keyring) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	errc := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		c, _, err := kr.serverHandshake(raw)
		if err != nil {
			errc <- err
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(c, c)
		errc <- err
	}()
	return ln.Addr().String(), errc
}

func TestSealedChannelCarriesDataItDoesNotShow(t *testing.T) {
	for name, rings := range map[string][2]keyring{
		"same key": {newKeyring([][]byte{key(1)}), newKeyring([][]byte{key(1)})},
		// During a rotation the two sides sign with different primaries;
		// both must still derive the same session keys.
		"rotation": {newKeyring([][]byte{key(2), key(1)}), newKeyring([][]byte{key(1), key(2)})},
	} {
		t.Run(name, func(t *testing.T) {
			addr, errc := echoServer(t, rings[0])
			tp := startTap(t, addr, -1)
			raw, err := net.Dial("tcp", tp.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			c, err := rings[1].clientHandshake(raw, kindRPC)
			if err != nil {
				t.Fatal(err)
			}
			// 100 KB: several records, one Write.
			msg := bytes.Repeat([]byte("allocation site-b asn 64513 "), 100<<10/28)
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reading the echo: %v (server: %v)", err, drain(errc))
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("echo differs from what was sent")
			}
			if w := tp.wire(); bytes.Contains(w, []byte("site-b")) || len(w) < len(msg) {
				t.Fatalf("the wire (%d bytes) shows the plaintext or lacks it", len(w))
			}
		})
	}
}

func TestSealedChannelRefusesAlteredRecords(t *testing.T) {
	kr := newKeyring([][]byte{key(1)})
	addr, errc := echoServer(t, kr)
	// Client stream: magic+nonce (20), MAC (32), the kind record
	// (4+1+16=21), then the data record: flip a bit inside its ciphertext.
	tp := startTap(t, addr, 20+32+21+4+3)
	raw, err := net.Dial("tcp", tp.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c, err := kr.clientHandshake(raw, kindRPC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("release site-b")); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrAuth) {
		t.Fatalf("server read an altered record: err = %v, want ErrAuth", err)
	}
}

func TestSealedConnRejectsOversizedRecords(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	k := make([]byte, 32)
	rand.Read(k)
	sc, err := newSealedConn(a, k, k)
	if err != nil {
		t.Fatal(err)
	}
	go b.Write([]byte{0xff, 0xff, 0xff, 0xff})
	if _, err := sc.Read(make([]byte, 1)); !errors.Is(err, ErrAuth) {
		t.Fatalf("oversized record header: %v, want ErrAuth", err)
	}
}

func TestLabModeIsNotSealed(t *testing.T) {
	addr, errc := echoServer(t, newKeyring(nil))
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c, err := newKeyring(nil).clientHandshake(raw, kindRPC)
	if err != nil {
		t.Fatal(err)
	}
	if c != raw {
		t.Fatal("keyless handshake sealed the connection")
	}
	c.Write([]byte("ping"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q, %v (server %v)", got, err, drain(errc))
	}
}

func drain(errc <-chan error) error {
	select {
	case err := <-errc:
		return err
	default:
		return nil
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

// FuzzSealedConnRead feeds arbitrary bytes to the record reader: it must
// return an error or plaintext that was sealed under the key, never panic.
func FuzzSealedConnRead(f *testing.F) {
	k := bytes.Repeat([]byte{7}, 32)
	var sealed bytes.Buffer
	w, err := newSealedConn(bufConn{w: &sealed}, k, k)
	if err != nil {
		f.Fatal(err)
	}
	w.Write([]byte("allocate "))
	w.Write([]byte("site-b")) // two records
	f.Add(sealed.Bytes())
	f.Add([]byte{0, 0, 0, 16})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := newSealedConn(bufConn{r: bytes.NewReader(b)}, k, k)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(c)
		if len(out) > len(b) {
			t.Fatalf("read %d bytes of plaintext from %d on the wire", len(out), len(b))
		}
		if err == nil && !bytes.HasPrefix([]byte("allocate site-b"), out) {
			t.Fatalf("opened %q, which was never sealed", out)
		}
	})
}
