package platform

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// httpClient talks to the link-local metadata service: never through a
// proxy, every answer bounded (config.MaxUserData).
type httpClient struct {
	base string
	c    *http.Client
}

func newHTTP(base string) *httpClient {
	t := &http.Transport{
		Proxy:                 nil, // metadata is link-local: a proxy would fetch someone else's
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: 5 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &httpClient{base: strings.TrimRight(base, "/"), c: &http.Client{Transport: limited{t}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get fetches path with the headers given; a 404 is (nil, nil): the
// service is there but has no such item. Any other non-200 status is an
// error naming the path.
func (h *httpClient) get(ctx context.Context, path string, header ...string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return readUserData(resp.Body, "metadata "+path)
}

// limited bounds every answer's body for the clients this package does not
// read itself (the EC2 and GCE clients read whole bodies): past
// config.MaxUserData the read fails.
type limited struct{ http.RoundTripper }

func (l limited) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.RoundTripper.RoundTrip(req)
	if err == nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: config.MaxUserData, what: "metadata " + req.URL.Path}
	}
	return resp, err
}

type limitedBody struct {
	io.ReadCloser
	left int64
	what string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, fmt.Errorf("%w: %s is larger than %s, the limit (docs/config.md, Limits)", config.ErrInvalid, b.what, readlimit.Size(config.MaxUserData))
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, fmt.Errorf("%w: %s is larger than %s, the limit (docs/config.md, Limits)", config.ErrInvalid, b.what, readlimit.Size(config.MaxUserData))
	}
	return n, err
}

// mustGet is get where a 404 means the service is not this platform's.
func (h *httpClient) mustGet(ctx context.Context, path string, header ...string) ([]byte, error) {
	b, err := h.get(ctx, path, header...)
	if err == nil && b == nil {
		err = fmt.Errorf("%w: GET %s: 404 Not Found", errNotHere, path)
	}
	return b, err
}

// publicIPv4 parses an address a metadata service gives; invalid (and so
// ignored) unless it is a global IPv4 address.
func publicIPv4(s string) netip.Addr {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() || !a.IsGlobalUnicast() {
		return netip.Addr{}
	}
	return a
}
