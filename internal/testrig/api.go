package testrig

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/tfsite/tfsite/agent/api"
)

// ServeAPI serves b on a real agent API socket in a temp dir until cleanup
// and returns the socket path, as `tfsite agent` does.
func ServeAPI(t testing.TB, b api.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	srv, err := api.NewServer(api.ServerConfig{Socket: sock}, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("API server: %v", err)
		}
		srv.Close()
	})
	return sock
}
