package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// The agent answers two kinds of HTTP request: the local API on its unix
// socket (tfsite status, peers, site release, bring-up) and Prometheus
// scrapes. This file serves them without net/http's server. That server,
// with the HTTP/2 code it always links, is 720 KB of the agent's 11.6 MB
// binary, and every MB of binary costs each agent ≈ 0.85 MB of RSS against
// its 15 MB budget (docs/benchmarks.md). The clients (Go's http.Client,
// Prometheus, curl) need little of HTTP/1.1: one request per connection,
// answered with Content-Length and Connection: close; no request bodies, no
// TLS, no upgrades. Everything else gets a clear status and a one-line
// error.

const (
	// maxHead bounds a request line plus headers (431 beyond).
	maxHead = 8 << 10
	// headTimeout bounds reading the request, like net/http's
	// ReadHeaderTimeout; writeTimeout bounds writing the answer.
	headTimeout  = 5 * time.Second
	writeTimeout = 30 * time.Second
	// shutdownGrace is how long Close lets requests in flight finish.
	shutdownGrace = 2 * time.Second
)

// request is a parsed request head.
type request struct {
	method string
	// path is the escaped path of the target, without the query.
	path string
	// contentLength is the body's declared length (0 when absent).
	contentLength int64
}

// httpError is a request the server refuses, with the status to answer.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{code: 400, msg: fmt.Sprintf(format, args...)}
}

// readRequest reads one request head. Its errors are *httpError, except
// that a connection closed or timed out before a complete head returns the
// read error.
func readRequest(br *bufio.Reader) (request, error) {
	var req request
	budget := maxHead
	line, err := readLine(br, &budget)
	if err != nil {
		return req, err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !isToken(method) || target == "" {
		return req, badRequest("malformed request line %.64q: want METHOD /path HTTP/1.1", line)
	}
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return req, &httpError{code: 505, msg: fmt.Sprintf("protocol %.16q not supported: speak HTTP/1.1", proto)}
	}
	if target[0] != '/' {
		return req, badRequest("request target %.64q: want an absolute path such as /v1/status", target)
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return req, badRequest("request target has byte %#x: percent-encode it", c)
		}
	}
	req.method = method
	req.path, _, _ = strings.Cut(target, "?")
	if _, err := url.PathUnescape(req.path); err != nil {
		return req, badRequest("request path %.64q: bad percent-encoding", req.path)
	}
	seenLength := false
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			return req, err
		}
		if line == "" {
			return req, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) || strings.IndexFunc(value, isCTL) >= 0 {
			return req, badRequest("malformed header line %.64q: want Name: value", line)
		}
		value = strings.Trim(value, " \t")
		switch strings.ToLower(name) {
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || (seenLength && n != req.contentLength) {
				return req, badRequest("bad Content-Length %.32q", value)
			}
			req.contentLength, seenLength = n, true
		case "transfer-encoding":
			return req, &httpError{code: 501, msg: "Transfer-Encoding " + strconv.Quote(value) + " not supported: the API takes no request body"}
		}
	}
}

// readLine reads a CRLF- (or LF-) terminated line, charging it to budget.
func readLine(br *bufio.Reader, budget *int) (string, error) {
	var b []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(frag) > *budget {
			return "", &httpError{code: 431, msg: fmt.Sprintf("request head over %d bytes", maxHead)}
		}
		*budget -= len(frag)
		b = append(b, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return string(b), nil
}

// isToken reports whether s is an HTTP token (method or header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// isCTL reports control characters, which no header value may hold (HTAB
// aside).
func isCTL(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }

// reply is an answer: status, media type and body.
type reply struct {
	code        int
	contentType string
	body        []byte
}

// jsonReply encodes v indented, with a final newline.
func jsonReply(code int, v any) reply {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return errorReply(500, fmt.Sprintf("encoding answer: %v", err))
	}
	return reply{code: code, contentType: "application/json", body: append(b, '\n')}
}

// errorReply is an error answer in the API's error format.
func errorReply(code int, msg string) reply { return jsonReply(code, Error{Error: msg}) }

// route answers method on a path pattern such as /v1/sites/{name}/release;
// a {wildcard} matches one non-empty segment, passed unescaped to serve.
// GET routes answer HEAD too.
type route struct {
	method  string
	pattern string
	serve   func(ctx context.Context, args []string) reply
}

// match reports whether path fits pattern and returns the wildcards.
func match(pattern, path string) ([]string, bool) {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var args []string
	for i, p := range ps {
		if strings.HasPrefix(p, "{") {
			v, _ := url.PathUnescape(xs[i]) // readRequest refused bad escapes
			if v == "" {
				return nil, false
			}
			args = append(args, v)
		} else if p != xs[i] {
			return nil, false
		}
	}
	return args, true
}

// dispatch finds the route for req: 404 for an unknown path, 405 naming the
// allowed methods for a known path.
func dispatch(ctx context.Context, routes []route, req request) reply {
	var allowed []string
	for _, rt := range routes {
		args, ok := match(rt.pattern, req.path)
		if !ok {
			continue
		}
		if rt.method == req.method || (rt.method == "GET" && req.method == "HEAD") {
			return rt.serve(ctx, args)
		}
		allowed = append(allowed, rt.method)
	}
	if allowed != nil {
		return errorReply(405, fmt.Sprintf("%s %s: method not allowed; use %s", req.method, req.path, strings.Join(allowed, ", ")))
	}
	return errorReply(404, fmt.Sprintf("no such endpoint %s", req.path))
}

// statusText names the codes this server answers with.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 204:
		return "No Content"
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 409:
		return "Conflict"
	case 413:
		return "Content Too Large"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status " + strconv.Itoa(code)
}

// writeReply writes rp as an HTTP/1.1 answer that closes the connection.
func writeReply(w io.Writer, rp reply, head bool) error {
	var b []byte
	b = fmt.Appendf(b, "HTTP/1.1 %d %s\r\n", rp.code, statusText(rp.code))
	if rp.code != 204 {
		if rp.contentType != "" {
			b = fmt.Appendf(b, "Content-Type: %s\r\n", rp.contentType)
		}
		b = fmt.Appendf(b, "Content-Length: %d\r\n", len(rp.body))
	}
	b = append(b, "Connection: close\r\n\r\n"...)
	if rp.code != 204 && !head {
		b = append(b, rp.body...)
	}
	_, err := w.Write(b)
	return err
}

// httpServer serves a fixed route table on a listener until Close. Server
// and MetricsServer embed it.
type httpServer struct {
	ln      net.Listener
	routes  []route
	log     *slog.Logger
	cleanup func() // after the listener closed (the socket file's removal)
	// headTimeout and grace are headTimeout and shutdownGrace; tests
	// shorten them.
	headTimeout, grace time.Duration

	ctx     context.Context // handlers' context: cancelled when Close gives up waiting
	cancel  context.CancelFunc
	wg      sync.WaitGroup // connections being served
	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
	once    sync.Once
}

func newHTTPServer(ln net.Listener, routes []route, log *slog.Logger, cleanup func()) *httpServer {
	ctx, cancel := context.WithCancel(context.Background())
	return &httpServer{ln: ln, routes: routes, log: log, cleanup: cleanup, headTimeout: headTimeout, grace: shutdownGrace,
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
}

// Run serves until ctx is done or Close; it returns nil then, and an error
// only if accepting connections fails for good.
func (s *httpServer) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) { // Close closed it
				return nil
			}
			if !isTemporary(err) {
				return fmt.Errorf("accepting on %s: %w", s.ln.Addr(), err)
			}
			// Out of file descriptors or the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff) // Close's listener close ends the next Accept
			continue
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			return nil
		}
		go func() {
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
}

// isTemporary reports accept errors worth retrying (EMFILE, ENFILE,
// ECONNABORTED, ...), which the net package still marks Temporary.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track counts a connection in; it refuses new ones once Close began.
func (s *httpServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *httpServer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// serveConn answers one request and closes the connection.
func (s *httpServer) serveConn(c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(s.headTimeout))
	br := bufio.NewReaderSize(c, 1024)
	req, err := readRequest(br)
	var rp reply
	var he *httpError
	switch {
	case errors.As(err, &he):
		rp = errorReply(he.code, he.msg)
	case err != nil:
		return // closed or timed out before a whole request: nothing to answer
	case req.contentLength > MaxRequestBody:
		rp = errorReply(413, fmt.Sprintf("request body of %d bytes is larger than %s, the limit: no endpoint of the API takes a body",
			req.contentLength, readlimit.Size(MaxRequestBody)))
	default:
		if _, err := io.CopyN(io.Discard, br, req.contentLength); err != nil {
			return
		}
		ctx, cancel := s.hangUpContext(c, br)
		rp = dispatch(ctx, s.routes, req)
		cancel()
	}
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := writeReply(c, rp, req.method == "HEAD"); err != nil {
		s.log.Debug("writing answer", "err", err)
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// hangUpContext returns the handler's context for the request just read
// from c: cancelled, as net/http does, when the client hangs up (or shuts
// down its sending side) before the answer, since nobody waits for it, and
// when Close gives up waiting. The client sends nothing after its request
// (one per connection), so a read that ends means it is gone; the read ends
// at the latest when serveConn closes c. The caller cancels when the
// handler is done.
func (s *httpServer) hangUpContext(c net.Conn, br *bufio.Reader) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(s.ctx)
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		if _, err := br.ReadByte(); err != nil {
			cancel()
		}
	}()
	return ctx, cancel
}

// Addr is the listener's address.
func (s *httpServer) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, lets requests in flight finish for up to 2 s, then
// cancels them and drops their connections; safe to call twice.
func (s *httpServer) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		_ = s.ln.Close()
		if s.cleanup != nil {
			s.cleanup()
		}
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.grace):
		}
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	return nil
}
