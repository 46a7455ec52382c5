package alloc

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"time"

	"github.com/tfsite/tfsite/agent/site"
)

// KeyHolder is a client of voter endpoints as any holder of the fleet key
// can run one: it names itself as it likes, proving a static key of its own
// (fresh) or one it stole from a site's state dir.
type KeyHolder struct {
	id   identity
	kr   keyring
	dial dialFunc
}

// NewKeyHolder makes a key holder naming itself site; with a non-nil as, it
// proves as's static key (as if it had copied that site's key file).
func NewKeyHolder(site string, keys [][]byte, as *Allocator) *KeyHolder {
	h := &KeyHolder{id: identity{site: site}, kr: newKeyring(keys), dial: dialFrom(netip.Addr{})}
	if as != nil {
		h.id.key = as.self.key
	} else {
		h.id.key, _ = cipherSuite.GenerateKeypair(rand.Reader)
	}
	return h
}

// Call sends one RPC to voter's endpoint.
func (h *KeyHolder) Call(ctx context.Context, voter *Allocator, op, site, owner string, claim *site.Allocation) (*site.Allocation, string, string, error) {
	req := request{Op: op, Site: site, Owner: owner, Claim: claim, VoterHash: voter.VoterHash()}
	resp, err := call(ctx, h.dial, h.kr, h.id, voter.Endpoint(), voter.PublicKey(), req)
	return resp.Alloc, resp.Code, resp.Msg, err
}

// Conn completes a handshake of kind 'A' with voter's endpoint and returns
// the open channel.
func (h *KeyHolder) Conn(voter *Allocator) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", voter.Endpoint().String(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	sc, err := h.kr.initiate(c, h.id, kindRPC, voter.PublicKey())
	c.SetDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, err
	}
	return sc, nil
}

// RoundTrip sends a table request on a channel from Conn and returns the
// answer's code and message.
func RoundTrip(c net.Conn, voterHash string) (string, string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if err := writeFrame(c, request{Op: rpcTable, VoterHash: voterHash}, maxRequestFrame); err != nil {
		return "", "", err
	}
	b, err := readFrame(c, maxResponseFrame)
	if err != nil {
		return "", "", err
	}
	resp, err := decodeResponse(b)
	return resp.Code, resp.Msg, err
}

// SetConnLimits replaces a voter's connection caps.
func SetConnLimits(a *Allocator, handshakes, handshakesPerIP, conns, connsPerPeer, connsPerIP int) {
	e := a.ep
	e.mu.Lock()
	e.limits = connLimits{handshakes, handshakesPerIP, conns, connsPerPeer, connsPerIP}
	e.mu.Unlock()
}

// FrameHeader is the header of a frame announcing n bytes.
func FrameHeader(n uint32) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }
