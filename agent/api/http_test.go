package api

import (
	"bufio"
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
		{"GET /v1/thing", func(*http.Request) reply {
			return jsonReply(200, map[string]string{"thing": "yes"})
		}},
		{"POST /v1/thing", func(*http.Request) reply { return reply{code: 204} }},
		{"POST /v1/sites/{name}/release", func(r *http.Request) reply {
			return jsonReply(200, []string{r.PathValue("name")})
		}},
		{"GET /v1/slow", func(r *http.Request) reply {
			started <- r.Context()
			select {
			case <-block:
				return jsonReply(200, "done")
			case <-r.Context().Done():
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
	s := newHTTPServer(ln, newHandler(routes), slog.New(slog.DiscardHandler), nil)
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
		t.Fatalf("%.40q: answer is not HTTP: %v", raw, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil && resp.StatusCode < 400 {
		t.Fatalf("%.40q: reading body: %v", raw, err)
	} // a refusal may reset the connection: the client still sends

	return resp, string(body)
}

// The API's own answers (routing, body limit) are one line of JSON; what
// net/http refuses before routing (malformed heads) gets its 4xx.
func TestRequestsGetClearAnswers(t *testing.T) {
	_, addr := startHTTP(t, echoRoutes(nil, nil))
	long := strings.Repeat("x", maxHeaderBytes+4096)
	body := strings.Repeat("b", MaxRequestBody)
	for _, c := range []struct {
		name, raw string
		code      int
		body      string // a substring of the answer's body
		json      bool   // the answer is the API's JSON error
	}{
		{"get", "GET /v1/thing HTTP/1.1\r\nHost: a\r\n\r\n", 200, `"thing": "yes"`, false},
		{"query ignored", "GET /v1/thing?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 200, `"yes"`, false},
		{"HTTP/1.0", "GET /v1/thing HTTP/1.0\r\n\r\n", 200, `"yes"`, false},
		{"no body", "POST /v1/thing HTTP/1.1\r\nHost: a\r\n\r\n", 204, "", false},
		{"body read and ignored", "POST /v1/thing HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 204, "", false},
		{"body at the limit", "POST /v1/thing HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n" + body, 204, "", false},
		{"body over the limit", "POST /v1/thing HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n" + body + "b", 413, "larger than 64 KiB, the limit: no endpoint of the API takes a body", true},
		{"chunked body over the limit", "POST /v1/thing HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n" + body + "b\r\n0\r\n\r\n", 413, "larger than 64 KiB", true},
		{"large body declared", "POST /v1/thing HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n", 413, "larger than 64 KiB", true},
		{"wildcard unescaped", "POST /v1/sites/a%2Fb/release HTTP/1.1\r\nHost: a\r\n\r\n", 200, `"a/b"`, false},
		{"unknown path", "GET /v2/thing HTTP/1.1\r\nHost: a\r\n\r\n", 404, "no such endpoint /v2/thing", true},
		{"wrong method", "DELETE /v1/thing HTTP/1.1\r\nHost: a\r\n\r\n", 405, "use GET, POST", true},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "", false},
		{"no version", "GET /v1/thing\r\n\r\n", 400, "", false},
		{"binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "", false},
		{"header without colon", "GET /v1/thing HTTP/1.1\r\nHost a\r\n\r\n", 400, "", false},
		{"two lengths", "POST /v1/thing HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "", false},
		{"huge head", "GET /v1/thing HTTP/1.1\r\nHost: a\r\nX: " + long + "\r\n\r\n", 431, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, got := rawExchange(t, addr, c.raw)
			if resp.StatusCode != c.code || !strings.Contains(got, c.body) {
				t.Fatalf("answer %d %q, want %d containing %q", resp.StatusCode, got, c.code, c.body)
			}
			if c.json {
				var e Error
				if err := json.Unmarshal([]byte(got), &e); err != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
					t.Errorf("error body %q: want one line of JSON {\"error\": ...} (%v)", got, err)
				}
				if resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
				}
			}
		})
	}
}

func TestGoClientKeepsWorkingAcrossRequests(t *testing.T) {
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
	_, addr := startHTTP(t, echoRoutes(nil, nil), func(s *httpServer) { s.srv.ReadHeaderTimeout = 100 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v1/thing HTTP/1.1\r\n") // and never the end of the head
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("silent client: the server kept the connection open past its header timeout")
	}
}

func TestConnectionsAreCapped(t *testing.T) {
	started := make(chan context.Context, maxConns+1)
	block := make(chan struct{})
	defer close(block)
	_, addr := startHTTP(t, echoRoutes(block, started))
	for range maxConns {
		c := sendSlowRequest(t, addr)
		defer c.Close()
		<-started
	}
	extra := sendSlowRequest(t, addr)
	defer extra.Close()
	select {
	case <-started:
		t.Fatalf("connection %d was served while %d were busy", maxConns+1, maxConns)
	case <-time.After(200 * time.Millisecond):
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
	c := sendSlowRequest(t, addr)
	defer c.Close()
	ctx := <-started
	s.Close()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a handler stuck past the grace period was not cancelled")
	}
}

// sendSlowRequest sends GET /v1/slow on a new connection.
func sendSlowRequest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /v1/slow HTTP/1.1\r\nHost: a\r\n\r\n")
	return c
}

// A client that hangs up while its request is served cancels the handler's
// context: nobody waits for the answer.
func TestHangUpCancelsRequest(t *testing.T) {
	started := make(chan context.Context, 1)
	_, addr := startHTTP(t, echoRoutes(nil, started))
	c := sendSlowRequest(t, addr)
	ctx := <-started
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

func TestCloseBeforeRunIsClean(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newHTTPServer(ln, newHandler(echoRoutes(nil, nil)), slog.New(slog.DiscardHandler), nil)
	s.Close()
	if err := s.Run(t.Context()); err != nil {
		t.Fatalf("Run after Close = %v, want nil", err)
	}
}
