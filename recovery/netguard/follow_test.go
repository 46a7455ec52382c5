package netguard

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// handOff writes a request for plan as `tfsite net try` does and returns its id.
func handOff(t *testing.T, g *Guard, plan string) string {
	t.Helper()
	id := NewID(time.Now(), os.Getpid())
	r := &Request{ID: id, Plan: mustPlan(t, plan), Timeout: Duration(g.cfg.Timeout), Settle: Duration(g.cfg.Settle)}
	if err := g.Store().WriteRequest(r); err != nil {
		t.Fatal(err)
	}
	return id
}

// runGuard claims request id and runs its window as `tfsite net guard` does.
func runGuard(ctx context.Context, g *Guard, id string) chan error {
	done := make(chan error, 1)
	go func() {
		r, err := g.Store().TakeRequest(id)
		if err == nil {
			_, err = g.TryRequest(ctx, r)
		}
		done <- err
	}()
	return done
}

func TestFollowReportsWhatTheGuardDid(t *testing.T) {
	g, k := newTestGuard(t)
	id := handOff(t, g, "operations: [{op: set-mtu, link: eth0, mtu: 9000}]")
	guard := runGuard(context.Background(), g, id)
	out, err := g.Follow(t.Context(), id, "test")
	if err != nil || !out.Confirmed || out.ID != id || !strings.Contains(out.Reason, "healthy for") {
		t.Fatalf("follow: %+v %v; want confirmed", out, err)
	}
	if err := <-guard; err != nil {
		t.Fatal(err)
	}
	if l, _ := k.State().Link("eth0"); l.MTU != 9000 {
		t.Fatalf("mtu %d, want the confirmed change kept", l.MTU)
	}

	before := k.State()
	id = handOff(t, g, takeoverPlan)
	guard = runGuard(context.Background(), g, id)
	_, err = g.Follow(t.Context(), id, "test")
	if !errors.Is(err, ErrReverted) || !strings.Contains(err.Error(), "not healthy within 1s") {
		t.Fatalf("follow of a lockout: %v, want reverted with the reason", err)
	}
	<-guard
	if d := before.Diff(k.State()); len(d) != 0 {
		t.Fatalf("not restored: %v", d)
	}
}

func TestFollowReportsTheGuardsRefusal(t *testing.T) {
	g, k := newTestGuard(t)
	id := handOff(t, g, "operations: [{op: del-address, link: eth1, address: 192.168.100.10/24}]")
	guard := runGuard(context.Background(), g, id)
	_, err := g.Follow(t.Context(), id, "test")
	if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), "management address") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("follow: %v, want the guard's refusal keeping ErrInvalidPlan", err)
	}
	<-guard
	if len(hostState().Diff(k.State())) != 0 {
		t.Fatal("state changed")
	}
	if _, ok := g.Store().takeRefusal(id); ok {
		t.Fatal("the refusal file stays after Follow read it")
	}
}

func TestFollowInterruptWithdrawsOrRollsBack(t *testing.T) {
	g, k := newTestGuard(t)
	// Not yet claimed: withdrawn, nothing ever applied.
	id := handOff(t, g, takeoverPlan)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := g.Follow(ctx, id, "test"); !errors.Is(err, ErrReverted) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("interrupted before the guard started: %v", err)
	}
	if _, err := g.Store().TakeRequest(id); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("a guard could still claim the withdrawn request: %v", err)
	}
	// In the window: the guard is asked to roll back.
	before := k.State()
	id = handOff(t, g, takeoverPlan)
	guard := runGuard(context.Background(), g, id)
	waitPending(t, g.Store())
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if _, err := g.Follow(ctx, id, "test"); !errors.Is(err, ErrReverted) || !strings.Contains(err.Error(), "rolled back by operator") {
		t.Fatalf("interrupted in the window: %v", err)
	}
	<-guard
	if d := before.Diff(k.State()); len(d) != 0 {
		t.Fatalf("not restored: %v", d)
	}
}

func TestFollowGivesUpWhenNoGuardClaims(t *testing.T) {
	g, _ := newTestGuard(t)
	old := StartTimeout
	StartTimeout = 200 * time.Millisecond
	t.Cleanup(func() { StartTimeout = old })
	id := handOff(t, g, takeoverPlan)
	if _, err := g.Follow(t.Context(), id, "test"); err == nil || !strings.Contains(err.Error(), "did not take change "+id) {
		t.Fatalf("follow with no guard: %v", err)
	}
	if g.Store().requestWaiting(id) {
		t.Fatal("the request was left for a late guard to apply")
	}
}

func TestFollowRevertsWhenTheGuardDied(t *testing.T) {
	g, k := newTestGuard(t)
	id := handOff(t, g, takeoverPlan)
	if _, err := g.Store().TakeRequest(id); err != nil {
		t.Fatal(err)
	}
	// What a guard killed in its window leaves: the record, the change, no lock.
	p := samplePending(t)
	p.ID, p.Deadline = id, time.Now().Add(300*time.Millisecond)
	if err := g.Store().WritePending(p); err != nil {
		t.Fatal(err)
	}
	changedHost := k.State()
	changedHost.Routes[0].Gateway = changedHost.Routes[0].Gateway.Next()
	k.Set(changedHost)
	_, err := g.Follow(t.Context(), id, "tfsite net try (pid 7)")
	if !errors.Is(err, ErrReverted) || !strings.Contains(err.Error(), "reverted by tfsite net try (pid 7): the guarding process (pid 42) ended") {
		t.Fatalf("follow after the guard died: %v", err)
	}
	if d := p.Snapshot.Diff(k.State()); len(d) != 0 {
		t.Fatalf("not restored: %v", d)
	}
}
