package testrig

import (
	"testing"
	"time"
)

// TestLockoutLabTakeoverLocksOut: the lab works, and its takeover really
// cuts the operator off (so tests that expect a revert can fail).
func TestLockoutLabTakeoverLocksOut(t *testing.T) {
	l := NewLockoutLab(t)
	if err := l.Takeover(); err != nil {
		t.Fatal(err)
	}
	if err := l.OperatorReaches(500 * time.Millisecond); err == nil {
		t.Fatal("operator still reaches the host after the takeover")
	}
	if err := l.Host.Command("ip", "link", "show", "vhost0").Run(); err != nil {
		t.Fatalf("vhost0 missing after the takeover: %v", err)
	}
}
