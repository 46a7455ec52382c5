package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// The API socket and /metrics are served by net/http with every limit set
// explicitly: the clients are Go's http.Client, Prometheus and curl, all
// local or on the management network, none trusted to be well-behaved.
const (
	maxHeaderBytes    = 8 << 10          // request line + headers (431 beyond)
	readHeaderTimeout = 5 * time.Second  // a client that sends no head is dropped
	readTimeout       = 10 * time.Second // head + body (at most MaxRequestBody)
	writeTimeout      = 30 * time.Second // the answer (a backup may be 64 MiB)
	idleTimeout       = 30 * time.Second // keep-alive between requests
	maxConns          = 64               // connections served at once; more wait in the backlog
	shutdownGrace     = 2 * time.Second  // Close lets requests in flight finish this long
)

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

func (rp reply) write(w http.ResponseWriter) {
	if rp.contentType != "" {
		w.Header().Set("Content-Type", rp.contentType)
	}
	w.WriteHeader(rp.code)
	_, _ = w.Write(rp.body)
}

// route answers a net/http ServeMux pattern such as
// "POST /v1/sites/{name}/release" (a GET pattern answers HEAD too).
type route struct {
	pattern string
	serve   func(r *http.Request) reply
}

// newHandler routes to routes; anything else gets the API's JSON error: 404
// for an unknown path, 405 naming the methods a known path takes, 413 for a
// request body over MaxRequestBody (no endpoint takes one: a smaller body is
// read and ignored).
func newHandler(routes []route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			if rp, ok := discardBody(w, r); !ok {
				rp.write(w)
				return
			}
			rt.serve(r).write(w)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != "/" && p != "" {
				allowed = append(allowed, m)
			}
		}
		if allowed == nil {
			errorReply(404, fmt.Sprintf("no such endpoint %s", r.URL.EscapedPath())).write(w)
			return
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		errorReply(405, fmt.Sprintf("%s %s: method not allowed; use %s", r.Method, r.URL.EscapedPath(), strings.Join(allowed, ", "))).write(w)
	})
	return mux
}

// discardBody reads and drops the request's body, up to MaxRequestBody.
func discardBody(w http.ResponseWriter, r *http.Request) (reply, bool) {
	tooLarge := errorReply(413, fmt.Sprintf("request body is larger than %s, the limit: no endpoint of the API takes a body",
		readlimit.Size(MaxRequestBody)))
	if r.ContentLength > MaxRequestBody {
		return tooLarge, false
	}
	_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, MaxRequestBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge, false
	case err != nil:
		return errorReply(400, fmt.Sprintf("reading request body: %v", err)), false
	}
	return reply{}, true
}

// httpServer serves a handler on a listener until Close. Server and
// MetricsServer embed it.
type httpServer struct {
	srv     *http.Server
	ln      net.Listener
	cleanup func() // after the listener closed (the socket file's removal)
	grace   time.Duration
	cancel  context.CancelFunc // handlers' base context: cancelled when Close gives up waiting
	once    sync.Once
}

func newHTTPServer(ln net.Listener, h http.Handler, log *slog.Logger, cleanup func()) *httpServer {
	base, cancel := context.WithCancel(context.Background())
	var protocols http.Protocols
	protocols.SetHTTP1(true) // no HTTP/2 (nor h2c): nothing here needs it
	s := &httpServer{
		ln:      netutil.LimitListener(ln, maxConns),
		cleanup: cleanup,
		grace:   shutdownGrace,
		cancel:  cancel,
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		Protocols:         &protocols,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// Run serves until ctx is done or Close; it returns nil then, and an error
// only if accepting connections fails for good.
func (s *httpServer) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", s.ln.Addr(), err)
	}
	return nil
}

// Addr is the listener's address.
func (s *httpServer) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, lets requests in flight finish for up to 2 s, then
// cancels them and drops their connections; safe to call twice.
func (s *httpServer) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.grace)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.cancel()
			_ = s.srv.Close()
		}
		s.cancel()
		// Serve may not have run yet; the listener is closed either way.
		_ = s.ln.Close()
		if s.cleanup != nil {
			s.cleanup()
		}
	})
	return nil
}
