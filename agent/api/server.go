package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Backend answers the API; the agent implements it.
type Backend interface {
	Status(ctx context.Context) Status
	Peers(ctx context.Context) []Peer
	// BGPPeers lists the sites to BGP-peer with; ErrUnavailable until
	// membership and the allocator run.
	BGPPeers(ctx context.Context) ([]BGPPeer, error)
	// Release frees a departed site's allocation. Errors should wrap
	// ErrNotFound, ErrConflict or ErrUnavailable where they apply.
	Release(ctx context.Context, site string) error
}

// ServerConfig configures the socket.
type ServerConfig struct {
	// Socket is the unix socket path; its directory is created (0755).
	Socket string
	// Group, when set, owns the socket with mode 0660; otherwise 0600.
	Group string
}

// Server serves the API on a unix socket.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	ln   net.Listener
	srv  *http.Server
	once sync.Once
}

// NewServer creates the socket (replacing a stale one) and sets its mode; it
// serves once Run is called.
func NewServer(cfg ServerConfig, b Backend, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o755); err != nil {
		return nil, fmt.Errorf("creating API socket directory: %w", err)
	}
	if err := removeStaleSocket(cfg.Socket); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("listening on API socket: %w", err)
	}
	mode := os.FileMode(0o600)
	if cfg.Group != "" {
		gid, err := lookupGID(cfg.Group)
		if err == nil {
			err = os.Chown(cfg.Socket, -1, gid)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("giving API socket to group %q: %w", cfg.Group, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(cfg.Socket, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting API socket mode: %w", err)
	}
	s := &Server{cfg: cfg, log: log, ln: ln}
	s.srv = &http.Server{Handler: Handler(b, log), ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// removeStaleSocket removes a socket nobody answers on; a live one is an error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking API socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("API socket path %s exists and is not a socket; remove it or set apiSocket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another agent is serving %s; stop it first", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale API socket: %w", err)
	}
	return nil
}

func lookupGID(group string) (int, error) {
	if gid, err := strconv.Atoi(group); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// Run serves until ctx is done or Close; it returns nil then.
func (s *Server) Run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving API: %w", err)
	}
	return nil
}

// Close stops serving and removes the socket; safe to call twice.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
		_ = s.ln.Close()
		_ = os.Remove(s.cfg.Socket)
	})
	return nil
}

// Handler is the API's HTTP handler (exported for tests and other transports).
func Handler(b Backend, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Status(r.Context()))
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		peers := b.Peers(r.Context())
		if peers == nil {
			peers = []Peer{}
		}
		writeJSON(w, http.StatusOK, peers)
	})
	mux.HandleFunc("GET /v1/bgp-peers", func(w http.ResponseWriter, r *http.Request) {
		peers, err := b.BGPPeers(r.Context())
		if err != nil {
			writeJSON(w, statusCode(err), Error{Error: err.Error()})
			return
		}
		if peers == nil {
			peers = []BGPPeer{}
		}
		writeJSON(w, http.StatusOK, peers)
	})
	mux.HandleFunc("POST /v1/sites/{name}/release", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := b.Release(r.Context(), name); err != nil {
			log.Warn("release refused", "site", name, "err", err)
			writeJSON(w, statusCode(err), Error{Error: err.Error()})
			return
		}
		log.Info("released site allocation", "site", name)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func statusCode(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
