package netguard

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func newTestWatcher(t *testing.T, g *Guard, k *Model, report func(error)) *Watcher {
	t.Helper()
	w, err := NewWatcher(WatchConfig{Guard: g.cfg, Actor: "tfsite-agent", Interval: 10 * time.Millisecond, Report: report}, nil, WithKernel(k))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func TestWatcherRevertsOnlyAnOrphanPastItsDeadline(t *testing.T) {
	g, k := newTestGuard(t)
	var reports []error
	w := newTestWatcher(t, g, k, func(err error) { reports = append(reports, err) })
	if w.Check() != nil {
		t.Fatal("reverted with nothing pending")
	}
	p := samplePending(t)
	p.Deadline = time.Now().Add(time.Hour)
	if err := g.Store().WritePending(p); err != nil {
		t.Fatal(err)
	}
	changedHost := k.State() // the change
	changedHost.Routes[0].Gateway = changedHost.Routes[0].Gateway.Next()
	k.Set(changedHost)
	if w.Check() != nil {
		t.Fatal("reverted before the deadline: an operator may still confirm")
	}
	p.Deadline = time.Now().Add(-time.Second)
	if err := g.Store().WritePending(p); err != nil {
		t.Fatal(err)
	}
	lock, err := g.Store().TryLock() // a live guard finishing its window
	if err != nil {
		t.Fatal(err)
	}
	if w.Check() != nil {
		t.Fatal("reverted while a live process holds the lock")
	}
	lock.Unlock()
	if got := w.Check(); got == nil || got.ID != p.ID {
		t.Fatalf("orphan past its deadline not reverted: %v", got)
	}
	if d := p.Snapshot.Diff(k.State()); len(d) != 0 {
		t.Fatalf("not restored: %v", d)
	}
	ev, _ := g.Store().Events()
	if last := ev[len(ev)-1]; last.Event != EventReverted || last.Reason != "reverted by tfsite-agent: the guarding process (pid 42) ended before confirming" {
		t.Fatalf("journal %+v", last)
	}
	if len(reports) != 1 || !errors.Is(reports[0], ErrReverted) || !strings.Contains(reports[0].Error(), p.ID) {
		t.Fatalf("reports %v, want one revert naming %s", reports, p.ID)
	}
}

func TestWatcherReportsADamagedRecordOnce(t *testing.T) {
	g, k := newTestGuard(t)
	var reports []error
	w := newTestWatcher(t, g, k, func(err error) { reports = append(reports, err) })
	if err := g.Store().Init(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.Store().path(pendingFile), []byte("\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if w.Check() != nil {
			t.Fatal("reverted from a record with no snapshot")
		}
	}
	if len(reports) != 1 || !errors.Is(reports[0], ErrCorrupt) || !strings.Contains(reports[0].Error(), g.Store().path(pendingFile)) || !strings.Contains(reports[0].Error(), "Reset underlay to DHCP") {
		t.Fatalf("reports %v, want one naming the file and the way out", reports)
	}
	if len(k.Converged()) != 0 {
		t.Fatal("the kernel was touched")
	}
}

func TestWatchConfigValidateReportsAll(t *testing.T) {
	err := WatchConfig{Interval: time.Hour}.Validate()
	for _, want := range []string{"state dir", "watch interval", "actor"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}
