package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// echoRoutes answer with what the router passed them.
func echoRoutes(block <-chan struct{}, started chan<- context.Context) []route {
	return []route{
		{"GET", "/v1/thing", func(context.Context, []string) reply {
			return jsonReply(200, map[string]string{"thing": "yes"})
		}},
		{"POST", "/v1/thing", func(context.Context, []string) reply { return reply{code: 204} }},
		{"POST", "/v1/sites/{name}/release", func(_ context.Context, args []string) reply {
			return jsonReply(200, args)
		}},
		{"GET", "/v1/slow", func(ctx context.Context, _ []string) reply {
			started <- ctx
			select {
			case <-block:
				return jsonReply(200, "done")
			case <-ctx.Done():
				return errorReply(503, "cancelled")
			}
		}},
	}
}

// startHTTP serves routes on a loopback TCP listener; tweaks adjust the
// server before it runs.
func startHTTP(t *testing.T, routes []route, tweaks ...func(*httpServer)) (*httpServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newHTTPServer(ln, routes, slog.New(slog.DiscardHandler), nil)
	for _, tw := range tweaks {
		tw(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(t.Context()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// rawExchange sends raw bytes and parses the answer as Go's client would.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: answer is not HTTP: %v", raw, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: reading body: %v", raw, err)
	}
	if !resp.Close {
		t.Errorf("%q: answer does not close the connection", raw)
	}
	return resp, string(body)
}

func TestRequestsGetClearAnswers(t *testing.T) {
	_, addr := startHTTP(t, echoRoutes(nil, nil))
	long := strings.Repeat("x", maxHead)
	body := strings.Repeat("b", MaxRequestBody)
	for _, c := range []struct {
		name, raw string
		code      int
		body      string // a substring of the answer's body
	}{
		{"get", "GET /v1/thing HTTP/1.1\r\nHost: a\r\n\r\n", 200, `"thing": "yes"`},
		{"query ignored", "GET /v1/thing?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 200, `"yes"`},
		{"HTTP/1.0, bare LF", "GET /v1/thing HTTP/1.0\n\n", 200, `"yes"`},
		{"no body", "POST /v1/thing HTTP/1.1\r\nHost: a\r\n\r\n", 204, ""},
		{"body read and ignored", "POST /v1/thing HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 204, ""},
		{"body at the limit", "POST /v1/thing HTTP/1.1\r\nContent-Length: 65536\r\n\r\n" + body, 204, ""},
		{"body over the limit", "POST /v1/thing HTTP/1.1\r\nContent-Length: 65537\r\n\r\n" + body + "b", 413, "larger than 64 KiB, the limit: no endpoint of the API takes a body"},
		{"wildcard unescaped", "POST /v1/sites/a%2Fb/release HTTP/1.1\r\n\r\n", 200, `"a/b"`},
		{"unknown path", "GET /v2/thing HTTP/1.1\r\n\r\n", 404, "no such endpoint /v2/thing"},
		{"empty wildcard", "POST /v1/sites//release HTTP/1.1\r\n\r\n", 404, "no such endpoint"},
		{"wrong method", "DELETE /v1/thing HTTP/1.1\r\n\r\n", 405, "use GET, POST"},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "speak HTTP/1.1"},
		{"relative target", "GET v1/thing HTTP/1.1\r\n\r\n", 400, "absolute path"},
		{"no version", "GET /v1/thing\r\n\r\n", 400, "malformed request line"},
		{"binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "malformed request line"},
		{"space in target", "GET /v1/th ing HTTP/1.1\r\n\r\n", 505, "not supported"},
		{"control byte in target", "GET /v1/\x01 HTTP/1.1\r\n\r\n", 400, "percent-encode"},
		{"bad escape", "POST /v1/sites/%zz/release HTTP/1.1\r\n\r\n", 400, "bad percent-encoding"},
		{"header without colon", "GET /v1/thing HTTP/1.1\r\nHost a\r\n\r\n", 400, "malformed header line"},
		{"folded header", "GET /v1/thing HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, "malformed header line"},
		{"chunked body", "POST /v1/thing HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, "takes no request body"},
		{"large body", "POST /v1/thing HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", 413, "larger than 64 KiB, the limit: no endpoint of the API takes a body"},
		{"two lengths", "POST /v1/thing HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "Content-Length"},
		{"negative length", "POST /v1/thing HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"},
		{"huge head", "GET /v1/thing HTTP/1.1\r\nX: " + long + "\r\n\r\n", 431, "over 8192 bytes"},
		{"huge request line", "GET /" + long + " HTTP/1.1\r\n\r\n", 431, "over 8192 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, c.raw)
			if resp.StatusCode != c.code || !strings.Contains(body, c.body) {
				t.Fatalf("answer %d %q, want %d containing %q", resp.StatusCode, body, c.code, c.body)
			}
			if c.code >= 400 {
				var e Error
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
					t.Errorf("error body %q: want one line of JSON {\"error\": ...} (%v)", body, err)
				}
			}
			if c.code == 405 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestHeadAnswersWithoutBody(t *testing.T) {
	_, addr := startHTTP(t, echoRoutes(nil, nil))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "HEAD /v1/thing HTTP/1.1\r\n\r\n")
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := bytes.Cut(all, []byte("\r\n\r\n"))
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 OK\r\n")) || !bytes.Contains(head, []byte("Content-Length: ")) || len(body) != 0 {
		t.Fatalf("HEAD answer %q", all)
	}
}

func TestGoClientKeepsWorkingAcrossRequests(t *testing.T) {
	// Go's client pools connections; each answer closes its connection, so
	// a second request must not reuse a dead one.
	_, addr := startHTTP(t, echoRoutes(nil, nil))
	for i := range 3 {
		resp, err := http.Get("http://" + addr + "/v1/thing")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.ContentLength != int64(len(b)) {
			t.Fatalf("request %d: %d %q %q", i, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}

func TestSilentClientIsDropped(t *testing.T) {
	_, addr := startHTTP(t, echoRoutes(nil, nil), func(s *httpServer) { s.headTimeout = 100 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v1/thing HTTP/1.1\r\n") // and never the end of the head
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("silent client: read %d, %v; want the server to close without answering", n, err)
	}
}

func TestCloseLetsRequestsFinish(t *testing.T) {
	block, started := make(chan struct{}), make(chan context.Context, 1)
	s, addr := startHTTP(t, echoRoutes(block, started))
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/v1/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-closed:
		t.Fatal("Close returned while a request was in flight")
	default:
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("Close still accepts connections")
	}
	close(block)
	if b := <-got; !strings.Contains(b, "done") {
		t.Fatalf("request in flight during Close got %q", b)
	}
	<-closed
	s.Close() // twice is safe
}

func TestCloseCancelsStuckRequests(t *testing.T) {
	started := make(chan context.Context, 1)
	s, addr := startHTTP(t, echoRoutes(nil, started), func(s *httpServer) { s.grace = 100 * time.Millisecond })
	c, ctx := startSlowRequest(t, addr, started)
	defer c.Close()
	s.Close()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a handler stuck past the grace period was not cancelled")
	}
}

// startSlowRequest sends GET /v1/slow on a new connection and returns it
// with the handler's context once the handler has started.
func startSlowRequest(t *testing.T, addr string, started <-chan context.Context) (net.Conn, context.Context) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /v1/slow HTTP/1.1\r\n\r\n")
	return c, <-started
}

// A client that hangs up while its request is served cancels the handler's
// context, as with net/http: nobody waits for the answer.
func TestHangUpCancelsRequest(t *testing.T) {
	started := make(chan context.Context, 1)
	_, addr := startHTTP(t, echoRoutes(nil, started))
	c, ctx := startSlowRequest(t, addr, started)
	select {
	case <-ctx.Done():
		t.Fatal("the handler's context was cancelled while the client waited")
	case <-time.After(100 * time.Millisecond):
	}
	c.Close()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled when the client hung up")
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		args          []string
		ok            bool
	}{
		{"/v1/status", "/v1/status", nil, true},
		{"/v1/status", "/v1/status/", nil, false},
		{"/v1/status", "/v1/statu", nil, false},
		{"/v1/sites/{name}/release", "/v1/sites/site-a/release", []string{"site-a"}, true},
		{"/v1/sites/{name}/release", "/v1/sites/a%20b/release", []string{"a b"}, true},
		{"/v1/sites/{name}/release", "/v1/sites/a/b/release", nil, false},
	} {
		args, ok := match(c.pattern, c.path)
		if ok != c.ok || strings.Join(args, "|") != strings.Join(c.args, "|") {
			t.Errorf("match(%q, %q) = %q, %v; want %q, %v", c.pattern, c.path, args, ok, c.args, c.ok)
		}
	}
}

// FuzzReadRequest: any input gets a request or an error, never a panic; an
// accepted head is one Go's own HTTP parser also accepts, with the same
// method and path, and every refusal carries a status to answer.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET /v1/status HTTP/1.1\r\nHost: tfsite\r\n\r\n",
		"POST /v1/sites/a%2Fb/release HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
		"GET /metrics?x=y HTTP/1.0\n\n",
		"GET /v1/status HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := readRequest(bufio.NewReaderSize(bytes.NewReader(data), 1024))
		var he *httpError
		if err != nil {
			if !errors.As(err, &he) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v is neither a refusal nor a short read", err)
			}
			if he != nil && (he.code < 400 || he.code > 599 || he.msg == "" || strings.ContainsAny(he.msg, "\r\n")) {
				t.Fatalf("refusal %d %q: want a 4xx/5xx and one line", he.code, he.msg)
			}
			return
		}
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("accepted %q, which net/http refuses: %v", data, err)
		}
		if hr.Method != req.method || hr.URL.EscapedPath() != req.path && hr.URL.Path != req.path {
			t.Fatalf("%q: parsed %s %s, net/http %s %s", data, req.method, req.path, hr.Method, hr.URL.EscapedPath())
		}
	})
}

// flakyListener fails its first Accepts with a temporary error, as a
// listener out of file descriptors does.
type flakyListener struct {
	net.Listener
	fails int
}

type temporaryErr struct{}

func (temporaryErr) Error() string   { return "accept4: too many open files" }
func (temporaryErr) Temporary() bool { return true }
func (temporaryErr) Timeout() bool   { return false }

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: temporaryErr{}}
	}
	return l.Listener.Accept()
}

func TestTemporaryAcceptErrorsAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newHTTPServer(&flakyListener{Listener: ln, fails: 3}, echoRoutes(nil, nil), slog.New(slog.DiscardHandler), nil)
	done := make(chan error, 1)
	go func() { done <- s.Run(t.Context()) }()
	resp, body := rawExchange(t, ln.Addr().String(), "GET /v1/thing HTTP/1.1\r\n\r\n")
	if resp.StatusCode != 200 || !strings.Contains(body, "yes") {
		t.Fatalf("after temporary accept errors: %d %q", resp.StatusCode, body)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after Close", err)
	}
}
