package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tfsite/tfsite/agent/site"
)

// Backend answers the API; the agent implements it.
type Backend interface {
	Status(ctx context.Context) Status
	Peers(ctx context.Context) []Peer
	// BGPPeers lists the sites to BGP-peer with; ErrUnavailable until
	// membership and the allocator run.
	BGPPeers(ctx context.Context) ([]site.BGPPeer, error)
	// Release frees a departed site's allocation. Errors should wrap
	// ErrNotFound, ErrConflict or ErrUnavailable where they apply.
	Release(ctx context.Context, site string) error
}

// MaxRequestBody bounds a request's body. No endpoint takes one: a body up
// to this size is read and ignored, a larger one is answered 413 naming the
// limit.
const MaxRequestBody = 64 << 10

// ServerConfig configures the socket.
type ServerConfig struct {
	// Socket is the unix socket path; its directory is created (0755).
	Socket string
	// Group, when set, owns the socket with mode 0660; otherwise 0600.
	Group string
}

// Server serves the API on a unix socket: Run serves, Close stops and
// removes the socket (safe twice).
type Server struct {
	*httpServer
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
	return &Server{newHTTPServer(ln, newHandler(routes(b, log)), log, func() { _ = os.Remove(cfg.Socket) })}, nil
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

// routes are the API's endpoints.
func routes(b Backend, log *slog.Logger) []route {
	return []route{
		{"GET /v1/status", func(r *http.Request) reply {
			return jsonReply(200, b.Status(r.Context()))
		}},
		{"GET /v1/peers", func(r *http.Request) reply {
			peers := b.Peers(r.Context())
			if peers == nil {
				peers = []Peer{}
			}
			return jsonReply(200, peers)
		}},
		{"GET /v1/bgp-peers", func(r *http.Request) reply {
			peers, err := b.BGPPeers(r.Context())
			if err != nil {
				return errorReply(statusCode(err), err.Error())
			}
			if peers == nil {
				peers = []site.BGPPeer{}
			}
			return jsonReply(200, peers)
		}},
		{"POST /v1/sites/{name}/release", func(r *http.Request) reply {
			name := r.PathValue("name")
			if err := b.Release(r.Context(), name); err != nil {
				log.Warn("release refused", "site", name, "err", err)
				return errorReply(statusCode(err), err.Error())
			}
			log.Info("released site allocation", "site", name)
			return reply{code: 204}
		}},
		backupRoute(b, log),
	}
}

func statusCode(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return 404
	case errors.Is(err, ErrConflict):
		return 409
	case errors.Is(err, ErrUnavailable):
		return 503
	}
	return 500
}
