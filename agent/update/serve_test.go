package update

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestServeDirServesOnlyWhileRunning(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("sums\n"), 0o644)
	url, stop, err := serveDir(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(url + "SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "sums\n" {
		t.Fatalf("GET SHA256SUMS: %s %q", resp.Status, b)
	}
	if resp, err := http.Get(url + "../etc/passwd"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("served a file outside the directory")
		}
	}
	stop()
	stop() // safe twice
	if resp, err := http.Get(url + "SHA256SUMS"); err == nil {
		resp.Body.Close()
		t.Fatal("still served after stop")
	}
}
