package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// MaxAnswer bounds every answer the client reads (500 sites' peers fit
// well); a larger one fails naming the request and the limit.
const MaxAnswer = 16 << 20

// Client talks to an agent's API socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the agent listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Status fetches GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	body, err := c.do(ctx, http.MethodGet, "/v1/status")
	if err != nil {
		return st, err
	}
	defer body.Close()
	return DecodeStatus(body)
}

// Peers fetches GET /v1/peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	body, err := c.do(ctx, http.MethodGet, "/v1/peers")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return DecodePeers(body)
}

// BGPPeers fetches GET /v1/bgp-peers.
func (c *Client) BGPPeers(ctx context.Context) ([]site.BGPPeer, error) {
	body, err := c.do(ctx, http.MethodGet, "/v1/bgp-peers")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return DecodeBGPPeers(body)
}

// Release asks the agent to free a departed site's allocation.
func (c *Client) Release(ctx context.Context, site string) error {
	body, err := c.do(ctx, http.MethodPost, "/v1/sites/"+url.PathEscape(site)+"/release")
	if err != nil {
		return err
	}
	return body.Close()
}

func (c *Client) do(ctx context.Context, method, path string) (io.ReadCloser, error) {
	return c.doLimit(ctx, method, path, MaxAnswer)
}

// doLimit is do with a body of up to limit bytes.
func (c *Client) doLimit(ctx context.Context, method, path string, limit int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://tfsite"+path, nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w at %s: %v; is the agent running? (systemctl status tfsite-agent, or pass --socket)", ErrAgentDown, c.socket, op.Err)
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return struct {
			io.Reader
			io.Closer
		}{readlimit.Reader(resp.Body, "agent answer to "+method+" "+path, limit), resp.Body}, nil
	}
	defer resp.Body.Close()
	return nil, DecodeError(resp.StatusCode, io.LimitReader(resp.Body, 64<<10))
}

// DecodeStatus decodes a Status answer.
func DecodeStatus(r io.Reader) (Status, error) {
	var st Status
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("decoding agent status: %w", err)
	}
	if st.Phase == "" {
		return Status{}, errors.New("decoding agent status: no phase; is this a tfsite agent socket?")
	}
	return st, nil
}

// DecodePeers decodes a peer list answer.
func DecodePeers(r io.Reader) ([]Peer, error) {
	var peers []Peer
	if err := json.NewDecoder(r).Decode(&peers); err != nil {
		return nil, fmt.Errorf("decoding agent peers: %w", err)
	}
	for i, p := range peers {
		if p.Site == "" {
			return nil, fmt.Errorf("decoding agent peers: entry %d has no site name", i)
		}
	}
	return peers, nil
}

// DecodeBGPPeers decodes a BGP peer list answer: every entry names a site
// and holds an ASN and a valid address.
func DecodeBGPPeers(r io.Reader) ([]site.BGPPeer, error) {
	var peers []site.BGPPeer
	if err := json.NewDecoder(r).Decode(&peers); err != nil {
		return nil, fmt.Errorf("decoding agent BGP peers: %w", err)
	}
	for i, p := range peers {
		if p.Site == "" || p.ASN == 0 || !p.Address.IsValid() {
			return nil, fmt.Errorf("decoding agent BGP peers: entry %d (%q) needs a site, an ASN and an address", i, p.Site)
		}
	}
	return peers, nil
}

// DecodeError turns a non-2xx answer into an error wrapping the sentinel for
// its status code.
func DecodeError(code int, r io.Reader) error {
	var e Error
	b, _ := io.ReadAll(r)
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	var sentinel error
	switch code {
	case http.StatusNotFound:
		sentinel = ErrNotFound
	case http.StatusConflict:
		sentinel = ErrConflict
	case http.StatusServiceUnavailable:
		sentinel = ErrUnavailable
	default:
		return fmt.Errorf("agent answered %d: %s", code, msg)
	}
	return fmt.Errorf("%w: %s", sentinel, strings.TrimPrefix(msg, sentinel.Error()+": "))
}
