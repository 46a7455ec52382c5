package alloc

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
)

// Allocation RPC: a connection of kind 'A' on the allocator channel
// (noise.go) carries length-prefixed (uint32 big-endian) JSON request and
// response frames, one response per request, in order.

const (
	// maxRequestFrame bounds what a voter reads from a peer: requests are a
	// few hundred bytes.
	maxRequestFrame = 16 << 10
	// maxResponseFrame bounds what a site reads from a voter it
	// authenticated: the table of a full fleet (~150 bytes per site) fits
	// many times over.
	maxResponseFrame = 8 << 20
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
	codeRefused       = "refused"
	codeBusy          = "busy"
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
	case errors.Is(err, ErrRefused):
		return codeRefused
	case errors.Is(err, errNotLeader):
		return codeNotLeader
	}
	return codeInternal
}

var (
	errNotLeader = errors.New("not the leader")
	errOversized = errors.New("oversized frame")
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
	case codeRefused:
		s = ErrRefused
	case codeBusy:
		// Over a voter's connection cap: transient, like a busy leader.
		s = ErrNoQuorum
	case codeNotLeader:
		s = errNotLeader
	default:
		return fmt.Errorf("allocator: %s: %s", code, msg)
	}
	if msg == "" {
		return s
	}
	return fmt.Errorf("%w: %s", s, strings.TrimPrefix(msg, s.Error()+": "))
}

// RPC operations.
const (
	rpcAllocate = "allocate" // obtain or re-assert (Claim) an allocation
	rpcRelease  = "release"
	rpcTable    = "table"
)

// request is one RPC. Who sends it is not part of it: the channel proves
// the requesting site's name and key (noise.go), and a voter checks them
// against the request (authz.go).
type request struct {
	Op        string           `json:"op"`
	Site      string           `json:"site"`
	Owner     string           `json:"owner,omitempty"`
	Claim     *site.Allocation `json:"claim,omitempty"`
	VoterHash string           `json:"voter_hash"`
}

type response struct {
	Alloc *site.Allocation `json:"alloc,omitempty"`
	// Index is the raft index of Alloc's entry (allocate answers).
	Index  uint64            `json:"index,omitempty"`
	Table  []site.Allocation `json:"table,omitempty"`
	Code   string            `json:"code,omitempty"`
	Msg    string            `json:"msg,omitempty"`
	Leader string            `json:"leader,omitempty"` // with code not_leader
	// LeaderEndpoint is the leader's allocator endpoint as the answering
	// voter knows it (with code not_leader), for a site whose own gossip
	// view lacks the leader (e.g. it once declared it dead under load).
	LeaderEndpoint netip.AddrPort `json:"leaderEndpoint,omitzero"`
	// LeaderKey is the leader's static public key as the answering voter
	// knows it (with code not_leader), to authenticate it at that endpoint.
	LeaderKey []byte `json:"leaderKey,omitempty"`
}

func decodeRequest(b []byte) (request, error) {
	var r request
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding allocation request: %w", err)
	}
	switch r.Op {
	case rpcAllocate, rpcRelease:
		if err := sitename.Validate(r.Site); err != nil {
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
	if r.LeaderKey != nil && len(r.LeaderKey) != site.KeyLen {
		return r, fmt.Errorf("allocation response: leader key of %d bytes, want %d", len(r.LeaderKey), site.KeyLen)
	}
	return r, nil
}

func writeFrame(w io.Writer, v any, limit int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", errOversized, len(b), limit)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(append(hdr[:], b...)); err != nil {
		return err
	}
	return nil
}

// readFrame reads one frame of at most limit bytes. The buffer grows with
// the bytes that really arrive, so a header announcing a large frame costs
// nothing until its bytes come.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > uint32(limit) {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", errOversized, n, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, err
	}
	if len(b) != int(n) {
		return nil, io.ErrUnexpectedEOF
	}
	return b, nil
}

// dialFunc opens a TCP connection to a voter endpoint.
type dialFunc func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)

// call performs one RPC to the voter at addr, whose static key is want,
// as self.
func call(ctx context.Context, dial dialFunc, kr keyring, self identity, addr netip.AddrPort, want []byte, req request) (response, error) {
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
	sc, err := kr.initiate(c, self, kindRPC, want)
	if err != nil {
		return response{}, err
	}
	if err := writeFrame(sc, req, maxRequestFrame); err != nil {
		return response{}, fmt.Errorf("sending to voter %s: %w", addr, err)
	}
	b, err := readFrame(bufio.NewReader(sc), maxResponseFrame)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return response{}, fmt.Errorf("voter %s closed the connection without answering: it does not hold our fleet key, refused this site's key, or is shutting down (see its log)", addr)
		}
		return response{}, fmt.Errorf("reading from voter %s: %w", addr, err)
	}
	return decodeResponse(b)
}

// dialFrom returns a dialFunc whose connections leave from src (when
// valid and of the target's family): a voter accepts a site's requests only
// from the address the site gossips from.
func dialFrom(src netip.Addr) dialFunc {
	var plain, bound net.Dialer
	if src.IsValid() && !src.IsUnspecified() {
		bound.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
		if bound.LocalAddr != nil && src.Unmap().Is4() == addr.Addr().Unmap().Is4() {
			c, err := bound.DialContext(ctx, "tcp", addr.String())
			if !errors.Is(err, syscall.EADDRNOTAVAIL) {
				return c, err
			}
			// Not an address of this host (an advertise address behind
			// NAT): let the kernel choose.
		}
		return plain.DialContext(ctx, "tcp", addr.String())
	}
}
