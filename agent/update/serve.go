package update

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// serveDir serves dir read-only over HTTP on a loopback port for one run of
// systemd-sysupdate. A regular-file source is copied without any check, so a
// disk (or USB stick) whose contents change after Verify read it would be
// written unchecked; as a URL source, sysupdate checks SHA256SUMS's signature
// and each file's hash over the very bytes it writes.
func serveDir(dir string, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("serving %s to systemd-sysupdate: %w", dir, err)
	}
	srv := &http.Server{
		Handler:           http.FileServer(http.Dir(dir)),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("serving the update directory stopped", "dir", dir, "err", err)
		}
	}()
	return "http://" + ln.Addr().String() + "/", func() { srv.Close() }, nil
}
