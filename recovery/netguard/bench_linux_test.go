package netguard

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// appendBench records one lockout→regained duration for hack/bench-rollback.sh.
func appendBench(t testing.TB, path string, d time.Duration) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%.3f\n", d.Seconds()); err != nil {
		t.Fatal(err)
	}
}
