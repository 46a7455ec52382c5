package alloc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// handshake runs a client and server handshake over a real loopback TCP
// connection and returns the server's view and the client's error.
func handshake(t *testing.T, server, client keyring) (byte, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type sres struct {
		kind byte
		err  error
	}
	ch := make(chan sres, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- sres{0, err}
			return
		}
		defer c.Close()
		_, k, err := server.serverHandshake(c)
		ch <- sres{k, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, cerr := client.clientHandshake(c, kindRPC)
	c.Close()
	s := <-ch
	return s.kind, s.err, cerr
}

func TestHandshake(t *testing.T) {
	k1, k2 := newKeyring([][]byte{key(1)}), newKeyring([][]byte{key(2)})
	if kind, serr, cerr := handshake(t, k1, k1); serr != nil || cerr != nil || kind != kindRPC {
		t.Fatalf("same key: kind %q server %v client %v", kind, serr, cerr)
	}
	// Key rotation (as with memberlist: install the new key everywhere,
	// then switch primaries): each side signs with its primary and accepts
	// any key of its ring.
	if _, serr, cerr := handshake(t, newKeyring([][]byte{key(2), key(1)}), newKeyring([][]byte{key(1), key(2)})); serr != nil || cerr != nil {
		t.Fatalf("rotation: server %v client %v", serr, cerr)
	}
	_, _, cerr := handshake(t, k1, k2)
	if !errors.Is(cerr, ErrAuth) {
		t.Fatalf("wrong key: client error %v, want ErrAuth", cerr)
	}
	// A keyless client against a keyed server is refused by the server.
	_, serr, _ := handshake(t, k1, newKeyring(nil))
	if serr == nil {
		t.Fatal("keyed server accepted a keyless client")
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	for _, s := range []error{ErrExhausted, ErrConflict, ErrUnknownSite, ErrNoQuorum, ErrVoterMismatch} {
		err := errorOf(codeOf(s), "detail")
		if !errors.Is(err, s) || !strings.Contains(err.Error(), "detail") {
			t.Errorf("%v → %v", s, err)
		}
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	req := request{Op: rpcAllocate, Site: "a", Owner: ownerA, Claim: &allocA, VoterHash: "h"}
	if err := writeFrame(&buf, req); err != nil {
		t.Fatal(err)
	}
	b, err := readFrame(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(b)
	if err != nil || got.Site != "a" || *got.Claim != allocA {
		t.Fatalf("%+v %v", got, err)
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := readFrame(bytes.NewReader(huge)); err == nil {
		t.Fatal("oversized frame accepted")
	}
	_ = context.Background
	_ = time.Second
}

func FuzzDecodeRequest(f *testing.F) {
	b, _ := json.Marshal(request{Op: rpcAllocate, Site: "a", Owner: ownerA, Claim: &allocA, VoterHash: "h"})
	f.Add(b)
	f.Add([]byte(`{"op":"release","site":"x"}`))
	f.Add([]byte(`{"op":"table"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRequest(data)
		if err != nil {
			return
		}
		if r.Op != rpcTable && ValidateSiteName(r.Site) != nil {
			t.Fatalf("accepted bad site %q", r.Site)
		}
		if r.Claim != nil && (r.Claim.Validate() != nil || r.Claim.Site != r.Site) {
			t.Fatalf("accepted bad claim %+v", r.Claim)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	b, _ := json.Marshal(response{Alloc: &allocA, Table: []Allocation{allocA, allocB}})
	f.Add(b)
	f.Add([]byte(`{"code":"not_leader","leader":"v1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeResponse(data)
		if err == nil && r.Alloc != nil && r.Alloc.Validate() != nil {
			t.Fatal("accepted invalid allocation")
		}
		_ = errorOf(r.Code, r.Msg)
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := readFrame(bytes.NewReader(data))
		if err == nil && len(b) > maxFrame {
			t.Fatal("oversized frame")
		}
	})
}
