package alloc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestErrorCodesRoundTrip(t *testing.T) {
	for _, s := range []error{ErrExhausted, ErrConflict, ErrUnknownSite, ErrNoQuorum, ErrVoterMismatch, ErrRefused} {
		err := errorOf(codeOf(s), "detail")
		if !errors.Is(err, s) || !strings.Contains(err.Error(), "detail") {
			t.Errorf("%v → %v", s, err)
		}
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	req := request{Op: rpcAllocate, Site: "a", Owner: ownerA, Claim: &allocA, VoterHash: "h"}
	if err := writeFrame(&buf, req, maxRequestFrame); err != nil {
		t.Fatal(err)
	}
	b, err := readFrame(&buf, maxRequestFrame)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(b)
	if err != nil || got.Site != "a" || *got.Claim != allocA {
		t.Fatalf("%+v %v", got, err)
	}
	// A header announcing more than the limit is refused before any byte
	// of the body is read or buffered.
	huge := []byte{0, 0x10, 0, 1}
	if _, err := readFrame(bytes.NewReader(huge), maxRequestFrame); !errors.Is(err, errOversized) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 9, '{', '}'}), maxRequestFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	if err := writeFrame(&buf, strings.Repeat("x", maxRequestFrame), maxRequestFrame); !errors.Is(err, errOversized) {
		t.Fatalf("writing an oversized frame: %v", err)
	}
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
		if r.Op != rpcTable && sitename.Validate(r.Site) != nil {
			t.Fatalf("accepted bad site %q", r.Site)
		}
		if r.Claim != nil && (r.Claim.Validate() != nil || r.Claim.Site != r.Site) {
			t.Fatalf("accepted bad claim %+v", r.Claim)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	b, _ := json.Marshal(response{Alloc: &allocA, Table: []site.Allocation{allocA, allocB}})
	f.Add(b)
	f.Add([]byte(`{"code":"not_leader","leader":"v1","leaderKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeResponse(data)
		if err == nil && r.Alloc != nil && r.Alloc.Validate() != nil {
			t.Fatal("accepted invalid allocation")
		}
		if err == nil && r.LeaderKey != nil && len(r.LeaderKey) != site.KeyLen {
			t.Fatal("accepted a bad leader key")
		}
		_ = errorOf(r.Code, r.Msg)
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := readFrame(bytes.NewReader(data), maxRequestFrame)
		if err == nil && (len(b) > maxRequestFrame || len(b) != int(binary.BigEndian.Uint32(data))) {
			t.Fatalf("frame of %d bytes", len(b))
		}
	})
}
