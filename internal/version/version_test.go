package version

import (
	"strings"
	"testing"
)

func TestStringNamesVersionAndGo(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.9.9"
	s := String()
	if !strings.HasPrefix(s, "tfsite v9.9.9 (") || !strings.Contains(s, "go1.") {
		t.Fatalf("String() = %q, want tfsite v9.9.9 (..., go1.x)", s)
	}
}
