package netguard

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestOperatorConfirmKeepsUnhealthyChange(t *testing.T) {
	g, k := newTestGuard(t)
	done := make(chan error, 1)
	go func() { _, err := g.Try(context.Background(), mustPlan(t, takeoverPlan)); done <- err }()
	waitPending(t, g.Store())
	if _, e, err := g.Confirm(t.Context()); err != nil || e.Event != EventConfirmed {
		t.Fatalf("confirm: %+v %v", e, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if gw, _, _ := k.State().DefaultGateway(); gw.String() != "10.0.0.20" {
		t.Fatalf("confirmed change not kept: gateway %s", gw)
	}
}

func TestNothingPending(t *testing.T) {
	g, _ := newTestGuard(t)
	for name, f := range map[string]func() error{
		"rollback": func() error { _, _, err := g.Rollback(t.Context()); return err },
		"confirm":  func() error { _, _, err := g.Confirm(t.Context()); return err },
		"recover":  func() error { _, err := g.Recover(); return err },
	} {
		if err := f(); !errors.Is(err, ErrNothingPending) {
			t.Errorf("%s: %v, want ErrNothingPending", name, err)
		}
	}
}

func TestRecoverRevertsLeftoverAndTryRefusesUntilThen(t *testing.T) {
	g, k := newTestGuard(t)
	p := samplePending(t)
	if err := g.Store().WritePending(p); err != nil {
		t.Fatal(err)
	}
	changedHost := k.State() // the dead process's change
	changedHost.Routes[0].Gateway = changedHost.Routes[0].Gateway.Next()
	k.Set(changedHost)
	if _, err := g.Try(t.Context(), mustPlan(t, "operations: [{op: set-mtu, link: eth0, mtu: 9000}]")); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "tfsite net recover") {
		t.Fatalf("try over a leftover: %v", err)
	}
	got, err := g.Recover()
	if err != nil || got.ID != p.ID {
		t.Fatalf("recover: %v %v", got, err)
	}
	if d := p.Snapshot.Diff(k.State()); len(d) != 0 {
		t.Fatalf("not restored: %v", d)
	}
	ev, _ := g.Store().Events()
	if !strings.Contains(ev[len(ev)-1].Reason, "pid 42") {
		t.Fatalf("journal: %+v", ev)
	}
}
