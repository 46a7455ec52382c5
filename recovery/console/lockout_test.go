package console

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// TestLockoutPolicy: the delays double, every fifth wrong password locks
// for a period that doubles up to the cap, and the waits are what the
// console will make the operator wait.
func TestLockoutPolicy(t *testing.T) {
	l := DefaultLockout()
	var f failures
	now := t0
	var waits []time.Duration
	var locked []bool
	for range 22 {
		f = f.fail(now, l)
		w := f.wait(now, l)
		waits, locked = append(waits, w), append(locked, f.Locked)
		now = now.Add(w) // the next try comes as soon as allowed
	}
	s, m := time.Second, time.Minute
	want := []time.Duration{s, 2 * s, 4 * s, 8 * s, 5 * m, s, 2 * s, 4 * s, 8 * s, 10 * m, s, 2 * s, 4 * s, 8 * s, 20 * m,
		s, 2 * s, 4 * s, 8 * s, 40 * m, s, 2 * s}
	for i := range want {
		if waits[i] != want[i] || locked[i] != (i%5 == 4) {
			t.Fatalf("after wrong password %d: wait %s locked %v, want %s %v (all: %v)", i+1, waits[i], locked[i], want[i], i%5 == 4, waits)
		}
	}
	for range 10 {
		f = f.fail(now, l)
		now = now.Add(f.wait(now, l))
	}
	if f.Lockouts != 6 || f.wait(now.Add(-time.Hour), l) != time.Hour {
		t.Fatalf("lockouts %d; the longest wait must be capped at %s", f.Lockouts, l.MaxPeriod)
	}
	// A clock set back never makes a wait longer than the cap.
	if w := (failures{Until: t0.Add(1000 * time.Hour)}).wait(t0, l); w != l.MaxPeriod {
		t.Fatalf("wait %s with Until far ahead, want %s", w, l.MaxPeriod)
	}
}

func TestLockoutValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Lockout = Lockout{Delay: 0, Threshold: 1, Period: time.Second, MaxPeriod: 48 * time.Hour}
	cfg.Hash.Memory = 1
	err := cfg.Validate()
	for _, want := range []string{"lockout delay", "lockout threshold", "lockout period", "hash parameters"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a line about %s", err, want)
		}
	}
}

// TestLimiterFile: wrong passwords are counted in the file, a right one
// clears it, and a try during a delay is refused without checking.
func TestLimiterFile(t *testing.T) {
	l := limiter{path: filepath.Join(t.TempDir(), "console", "lockout.json"), policy: DefaultLockout()}
	wrong := func() bool { return false }
	r, err := l.attempt(t0, wrong)
	if err != nil || r.ok || r.blocked || r.after.Failures != 1 {
		t.Fatalf("first wrong: %+v %v", r, err)
	}
	checked := false
	r, err = l.attempt(t0.Add(500*time.Millisecond), func() bool { checked = true; return true })
	if err != nil || !r.blocked || checked {
		t.Fatalf("a try within the delay: %+v %v (checked %v)", r, err, checked)
	}
	r, _ = l.attempt(t0.Add(time.Second), wrong)
	if st, err := l.load(); err != nil || st.Failures != 2 || !st.Until.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("stored %+v %v after two wrong", st, err)
	}
	if fi, _ := os.Stat(l.path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("lockout file mode %v", fi.Mode().Perm())
	}
	r, err = l.attempt(t0.Add(3*time.Second), func() bool { return true })
	if err != nil || !r.ok || r.before.Failures != 2 {
		t.Fatalf("right password: %+v %v", r, err)
	}
	if _, err := os.Stat(l.path); !os.IsNotExist(err) {
		t.Fatalf("a right password left the lockout file: %v", err)
	}
}

// TestLimiterCorruptFileCountsAsLockout: a damaged file is a lockout from
// its last write (so damaging it never clears one), and says how to clear it.
func TestLimiterCorruptFileCountsAsLockout(t *testing.T) {
	l := limiter{path: filepath.Join(t.TempDir(), "lockout.json"), policy: DefaultLockout()}
	for _, content := range []string{"{not json", `{"failures":-1,"lockouts":0,"until":"2030-01-01T00:00:00Z","locked":false}`,
		strings.Repeat(" ", maxLockoutFile+1)} {
		if err := os.WriteFile(l.path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		st, err := l.load()
		if !errors.Is(err, errCorruptLockout) || !strings.Contains(err.Error(), l.path) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%.20q: %v", content, err)
		}
		if !st.Locked || st.wait(now, l.policy) < 4*time.Minute {
			t.Fatalf("%.20q: state %+v is not a lockout", content, st)
		}
		if r, err := l.attempt(now, func() bool { return true }); err != nil || !r.blocked {
			t.Fatalf("%.20q: attempt %+v %v, want blocked", content, r, err)
		}
	}
}

// TestLimiterTwoConsolesCountEveryFailure: two consoles (two limiters on one
// file) recording wrong passwords at once lose no count: every try that was
// not refused is in the file.
func TestLimiterTwoConsolesCountEveryFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lockout.json")
	p := DefaultLockout()
	p.Threshold = 20
	var tick atomic.Int64
	var recorded atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := limiter{path: path, policy: p}
			for range 40 {
				// Hours apart: a try is refused only when the other console
				// recorded a later one first.
				now := t0.Add(time.Duration(tick.Add(1)) * time.Hour)
				r, err := l.attempt(now, func() bool { return false })
				if err != nil {
					t.Error(err)
					return
				}
				if !r.blocked {
					recorded.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	st, err := limiter{path: path, policy: p}.load()
	if err != nil || int64(st.Failures) != recorded.Load() || recorded.Load() < 40 {
		t.Fatalf("%+v %v, want %d failures (at least 40)", st, err, recorded.Load())
	}
}

func FuzzDecodeFailures(f *testing.F) {
	f.Add([]byte(`{"failures":3,"lockouts":0,"until":"2030-01-01T00:00:04Z","locked":false}`))
	f.Add([]byte(`{"failures":5,"lockouts":1,"until":"2030-01-01T00:05:00Z","locked":true}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeFailures(b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error on two lines: %q", err)
			}
			return
		}
		if st.Failures < 0 || st.Lockouts < 0 || st.Lockouts > st.Failures {
			t.Fatalf("accepted %+v", st)
		}
		l := DefaultLockout()
		if w := st.wait(t0, l); w < 0 || w > l.MaxPeriod {
			t.Fatalf("wait %s out of range for %+v", w, st)
		}
		_ = st.fail(t0, l)
	})
}
