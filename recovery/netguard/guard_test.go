package netguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/probe"
)

// memKernel is the side-effect-free kernel for the window logic tests: it
// applies operations to an in-memory State the same way Validate does.
type memKernel struct {
	mu       sync.Mutex
	s        *State
	failOp   string
	restores int
}

func (k *memKernel) Snapshot() (*State, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.s.Clone(), nil
}

func (k *memKernel) Apply(op Operation) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if op.Op == k.failOp {
		return fmt.Errorf("injected failure of %s", op.Op)
	}
	return simulate(k.s, op, map[string]bool{op.Link: true})
}

func (k *memKernel) Restore(s *State, _ []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.s = s.Clone()
	k.restores++
	return nil
}

// routeProber answers when the default gateway is the real one (10.0.0.1).
type routeProber struct{ k *memKernel }

func (p routeProber) ARP(context.Context, probe.Target) error { return nil }
func (p routeProber) Reach(context.Context, probe.Target) error {
	s, _ := p.k.Snapshot()
	if gw, _, _ := s.DefaultGateway(); gw.String() != "10.0.0.1" {
		return errors.New("unreachable through " + gw.String())
	}
	return nil
}

func newTestGuard(t *testing.T) (*Guard, *memKernel) {
	t.Helper()
	k := &memKernel{s: hostState()}
	cfg := Default()
	cfg.StateDir, cfg.Timeout, cfg.Settle, cfg.Interval, cfg.Protected = t.TempDir(), time.Second, 150*time.Millisecond, 20*time.Millisecond, mgmt
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), WithKernel(k), WithProber(routeProber{k}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g, k
}

func mustPlan(t *testing.T, y string) *Plan {
	t.Helper()
	p, err := DecodePlan([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHealthyChangeConfirmsItself(t *testing.T) {
	g, k := newTestGuard(t)
	out, err := g.Try(t.Context(), mustPlan(t, "operations: [{op: set-mtu, link: eth0, mtu: 9000}]\nprobes: {targets: ['icmp:10.9.0.2']}"))
	if err != nil || !out.Confirmed {
		t.Fatalf("outcome %+v, %v; want confirmed", out, err)
	}
	if l, _ := k.s.Link("eth0"); l.MTU != 9000 || k.restores != 0 {
		t.Fatalf("mtu %d restores %d; want the change kept", l.MTU, k.restores)
	}
	if _, err := g.Store().Pending(); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("pending after confirm: %v", err)
	}
	ev, _ := g.Store().Events()
	if len(ev) != 2 || ev[1].Event != EventConfirmed {
		t.Fatalf("journal %+v, want applied+confirmed", ev)
	}
}

func TestLockoutRevertsWithReason(t *testing.T) {
	g, k := newTestGuard(t)
	before := k.s.Clone()
	start := time.Now()
	out, err := g.Try(t.Context(), mustPlan(t, takeoverPlan))
	if !errors.Is(err, ErrReverted) || out.Confirmed {
		t.Fatalf("outcome %+v, %v; want reverted", out, err)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("reverted after %s, before the 1s deadline", took)
	}
	if d := before.Diff(k.s); len(d) != 0 {
		t.Fatalf("state not restored: %v", d)
	}
	ev, _ := g.Store().Events()
	last := ev[len(ev)-1]
	if last.Event != EventReverted || !strings.Contains(last.Reason, "not healthy within 1s") || !strings.Contains(last.Reason, "unreachable through 10.0.0.20") {
		t.Fatalf("journal's last event %+v, want the reason", last)
	}
}

func TestApplyFailureRevertsAtOnce(t *testing.T) {
	g, k := newTestGuard(t)
	k.failOp = OpReplaceDefaultGW
	before := k.s.Clone()
	_, err := g.Try(t.Context(), mustPlan(t, takeoverPlan))
	if !errors.Is(err, ErrReverted) || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("err %v", err)
	}
	if d := before.Diff(k.s); len(d) != 0 {
		t.Fatalf("half-applied plan left: %v", d)
	}
}

func TestInvalidPlanChangesNothing(t *testing.T) {
	g, k := newTestGuard(t)
	_, err := g.Try(t.Context(), mustPlan(t, "operations: [{op: del-address, link: eth1, address: 192.168.100.10/24}]"))
	if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("err %v", err)
	}
	if len(hostState().Diff(k.s)) != 0 {
		t.Fatal("state changed")
	}
	if _, err := g.Store().Pending(); !errors.Is(err, ErrNothingPending) {
		t.Fatal("pending written for a refused plan")
	}
}

func TestConcurrentTryRefusedNamingThePendingChange(t *testing.T) {
	g, _ := newTestGuard(t)
	done := make(chan error, 1)
	go func() { _, err := g.Try(context.Background(), mustPlan(t, takeoverPlan)); done <- err }()
	waitPending(t, g.Store())
	_, err := g.Try(t.Context(), mustPlan(t, "operations: [{op: set-mtu, link: eth0, mtu: 9000}]"))
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "emulate TF vhost0 takeover") || !strings.Contains(err.Error(), "tfsite net rollback") {
		t.Fatalf("second try: %v", err)
	}
	// An operator rollback ends the first window early.
	_, e, err := g.Rollback(t.Context())
	if err != nil || e.Event != EventReverted || !strings.Contains(e.Reason, "rolled back by operator") {
		t.Fatalf("rollback: %+v %v", e, err)
	}
	if err := <-done; !errors.Is(err, ErrReverted) {
		t.Fatalf("first try: %v", err)
	}
}

func TestCorruptJournalRefusesTry(t *testing.T) {
	g, k := newTestGuard(t)
	if err := g.Store().Init(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.Store().path(journalFile), []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := g.Try(t.Context(), mustPlan(t, takeoverPlan))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("err %v", err)
	}
	if len(hostState().Diff(k.s)) != 0 {
		t.Fatal("changed")
	}
}

func TestConfigValidateReportsAll(t *testing.T) {
	c := Config{Timeout: time.Millisecond, Settle: time.Hour}
	err := c.Validate()
	for _, want := range []string{"state dir", "timeout", "settle", "interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func waitPending(t *testing.T, st Store) {
	t.Helper()
	for range 200 {
		if _, err := st.Pending(); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no pending change appeared")
}
