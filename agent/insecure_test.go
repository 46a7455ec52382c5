package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/config"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The docs' example key is refused outside lab mode and warned about at
// start in lab mode (insecure: true), where the site still comes up.
func TestExampleKeyRefusedOrWarnedInLabMode(t *testing.T) {
	l := newLab(t, "site-a")
	l.key = config.ExampleKeys[0]
	cfg := l.config("site-a", 1)
	if _, err := New(cfg, nil); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "gossip.key: key 1 is the example key of docs/config.md") {
		t.Fatalf("New with the example key = %v, want a refusal naming it", err)
	}
	cfg.Insecure = true
	var logs syncBuffer
	a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("New in lab mode: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testSite{name: cfg.Site, cfg: cfg, agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Run(ctx) }()
	l.sites[cfg.Site] = s
	if st := l.waitAll(30 * time.Second)["site-a"]; st.Allocation == nil {
		t.Fatalf("lab site did not come up: %+v", st)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="lab mode (insecure: true): gossip key exposed" problem="gossip.key: key 1 is the example key`) {
		t.Fatalf("no lab-mode warning in the logs:\n%s", logs.String())
	}
}
