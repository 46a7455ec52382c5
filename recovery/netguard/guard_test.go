package netguard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/probe"
)

// routeProber answers when the default gateway is the real one (10.0.0.1).
type routeProber struct{ k *Model }

func (p routeProber) ARP(context.Context, probe.Target) error { return nil }
func (p routeProber) Reach(context.Context, probe.Target) error {
	s, _ := p.k.Snapshot()
	if gw, _, _ := s.DefaultGateway(); gw.String() != "10.0.0.1" {
		return errors.New("unreachable through " + gw.String())
	}
	return nil
}

func newTestGuard(t *testing.T) (*Guard, *Model) {
	t.Helper()
	k := NewModel(hostState())
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
	if l, _ := k.State().Link("eth0"); l.MTU != 9000 || len(k.Converged()) != 1 {
		t.Fatalf("mtu %d after %d converges; want the change applied once and kept", l.MTU, len(k.Converged()))
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
	before := k.State()
	start := time.Now()
	out, err := g.Try(t.Context(), mustPlan(t, takeoverPlan))
	if !errors.Is(err, ErrReverted) || out.Confirmed {
		t.Fatalf("outcome %+v, %v; want reverted", out, err)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("reverted after %s, before the 1s deadline", took)
	}
	if d := before.Diff(k.State()); len(d) != 0 {
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
	before := k.State()
	k.Refuse(func(want *State) error {
		if gw, _, _ := want.DefaultGateway(); gw != netip.MustParseAddr("10.0.0.1") {
			return errors.New("injected failure of replace-default-route")
		}
		return nil
	})
	_, err := g.Try(t.Context(), mustPlan(t, takeoverPlan))
	if !errors.Is(err, ErrReverted) || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("err %v", err)
	}
	if d := before.Diff(k.State()); len(d) != 0 {
		t.Fatalf("half-applied plan left: %v", d)
	}
}

func TestInvalidPlanChangesNothing(t *testing.T) {
	g, k := newTestGuard(t)
	_, err := g.Try(t.Context(), mustPlan(t, "operations: [{op: del-address, link: eth1, address: 192.168.100.10/24}]"))
	if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("err %v", err)
	}
	if len(hostState().Diff(k.State())) != 0 {
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
	if len(hostState().Diff(k.State())) != 0 {
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
