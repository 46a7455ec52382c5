package testrig

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestSyncBufferConcurrentWriters(t *testing.T) {
	var b SyncBuffer
	log := slog.New(slog.NewTextHandler(&b, nil))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				log.Info("line", "writer", i, "n", j)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "msg=line"); n != 200 {
		t.Fatalf("%d lines, want 200", n)
	}
	if !strings.Contains(b.String(), fmt.Sprintf("writer=%d n=%d", 3, 49)) {
		t.Fatal("a line is missing")
	}
}
