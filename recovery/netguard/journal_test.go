package netguard

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func samplePending(t *testing.T) *Pending {
	t.Helper()
	p, err := DecodePlan([]byte(takeoverPlan))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	return &Pending{Version: 1, ID: "x-1", Kind: "plan", PID: 42, Started: now, Deadline: now.Add(10 * time.Second),
		Settle: Duration(3 * time.Second), Snapshot: *hostState(), Plan: p, RemoveLinks: p.CreatedLinks()}
}

func TestPendingRoundTrip(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if _, err := st.Pending(); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("empty dir: %v, want ErrNothingPending", err)
	}
	want := samplePending(t)
	want.Snapshot.Routes[0].Table = 1000 // no name in the nethelpers enum
	if err := st.WritePending(want); err != nil {
		t.Fatal(err)
	}
	got, err := st.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if d := want.Snapshot.Diff(&got.Snapshot); len(d) != 0 {
		t.Fatalf("snapshot changed through the journal: %v", d)
	}
	if got.ID != want.ID || !got.Deadline.Equal(want.Deadline) || len(got.Plan.Operations) != 5 {
		t.Fatalf("pending = %+v", got)
	}
	if err := st.ClearPending(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pending(); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("after clear: %v", err)
	}
}

func TestCorruptRecordsGiveOneLineErrors(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	good, _ := json.Marshal(samplePending(t))
	for name, data := range map[string]string{
		"truncated":   string(good[:len(good)/2]),
		"not json":    "garbage",
		"wrong ver":   strings.Replace(string(good), `"version":1`, `"version":7`, 1),
		"no links":    `{"version":1,"id":"a","kind":"plan","started":"2026-01-01T00:00:00Z","deadline":"2026-01-01T00:00:10Z","snapshot":{"links":[]}}`,
		"extra field": strings.Replace(string(good), `"version":1`, `"version":1,"evil":true`, 1),
	} {
		if err := os.WriteFile(filepath.Join(st.Dir, pendingFile), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := st.Pending()
		if !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), pendingFile) {
			t.Errorf("%s: error %q, want one-line ErrCorrupt naming the file", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(st.Dir, journalFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.Record(Event{ID: "a", Event: EventApplied}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("record into corrupt journal: %v", err)
	}
}

func TestJournalKeepsNewest(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	for i := range maxEvents + 5 {
		if err := st.Record(Event{ID: "id", Event: EventApplied, Reason: string(rune('a' + i%26))}); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := st.Events()
	if err != nil || len(ev) != maxEvents {
		t.Fatalf("%d events, %v; want %d", len(ev), err, maxEvents)
	}
}

func TestLockIsExclusiveAndDecisionsMatchID(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	l, err := st.TryLock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.TryLock(); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v, want ErrBusy", err)
	}
	l.Unlock()
	l.Unlock()
	l2, err := st.TryLock()
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
	if err := st.WriteDecision("a", DecisionRollback); err != nil {
		t.Fatal(err)
	}
	if st.Decision("b") != "" || st.Decision("a") != DecisionRollback {
		t.Fatal("decision not bound to its change id")
	}
}

func FuzzDecodePending(f *testing.F) {
	good, _ := json.Marshal(samplePending(&testing.T{}))
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePending(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
	})
}

func FuzzDecodeJournal(f *testing.F) {
	f.Add([]byte(`{"version":1,"events":[{"time":"2026-01-01T00:00:00Z","id":"a","event":"reverted","reason":"x"}]}`))
	f.Add([]byte(`{"version":1,"events":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeJournal(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		for _, e := range ev {
			_ = FormatEvent(e)
		}
	})
}
