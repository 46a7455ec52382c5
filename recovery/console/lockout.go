package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/readlimit"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// Lockout is how wrong recovery passwords are slowed down: after the n-th
// wrong password in a row the next try waits Delay·2^(n-1); every
// Threshold-th wrong password locks the console for Period, doubled with
// each further lockout up to MaxPeriod. A right password clears it all. The
// count is kept in a file, so restarting the console (or using the other
// terminal) changes nothing.
type Lockout struct {
	Delay     time.Duration
	Threshold int
	Period    time.Duration
	MaxPeriod time.Duration
}

// DefaultLockout waits 1, 2, 4 and 8 s after the first four wrong passwords
// and locks for 5 min after the fifth (10, 20, 40 min, then 1 h after each
// further five).
func DefaultLockout() Lockout {
	return Lockout{Delay: time.Second, Threshold: 5, Period: 5 * time.Minute, MaxPeriod: time.Hour}
}

func (l Lockout) validate() []error {
	var errs []error
	if l.Delay <= 0 || l.Delay > time.Minute {
		errs = append(errs, fmt.Errorf("lockout delay %s: want more than 0 and at most 1m (default 1s)", l.Delay))
	}
	if l.Threshold < 2 || l.Threshold > 20 {
		errs = append(errs, fmt.Errorf("lockout threshold %d: want 2 to 20 wrong passwords (default 5)", l.Threshold))
	}
	if l.Period < l.Delay || l.MaxPeriod < l.Period || l.MaxPeriod > 24*time.Hour {
		errs = append(errs, fmt.Errorf("lockout period %s, max %s: want delay <= period <= max <= 24h (default 5m, 1h)", l.Period, l.MaxPeriod))
	}
	return errs
}

// failures is the lockout file's content.
type failures struct {
	// Failures counts wrong passwords since the last right one.
	Failures int `json:"failures"`
	// Lockouts counts the lockouts among them.
	Lockouts int `json:"lockouts"`
	// Until: no password is read before then.
	Until time.Time `json:"until"`
	// Locked says Until ends a lockout rather than a delay.
	Locked bool `json:"locked"`
}

// maxLockoutFile bounds what is read of the lockout file; maxFailures the
// count in it (far above what a lockout lets anyone type).
const (
	maxLockoutFile = 4096
	maxFailures    = 1_000_000
)

// wait is how long before the next try, never more than the policy allows
// (a clock set back must not lock the console for years).
func (f failures) wait(now time.Time, l Lockout) time.Duration {
	d := f.Until.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, l.MaxPeriod)
}

// fail records one wrong password at now.
func (f failures) fail(now time.Time, l Lockout) failures {
	f.Failures++
	if f.Failures%l.Threshold == 0 {
		f.Lockouts++
		f.Locked, f.Until = true, now.Add(doubled(l.Period, f.Lockouts-1, l.MaxPeriod))
		return f
	}
	f.Locked, f.Until = false, now.Add(doubled(l.Delay, f.Failures%l.Threshold-1, l.Period))
	return f
}

// doubled is d·2^n, at most limit.
func doubled(d time.Duration, n int, limit time.Duration) time.Duration {
	for ; n > 0 && d < limit; n-- {
		d *= 2
	}
	return min(d, limit)
}

// decodeFailures reads the lockout file's content.
func decodeFailures(b []byte) (failures, error) {
	var f failures
	if len(b) > maxLockoutFile {
		return f, fmt.Errorf("%d bytes, more than %d", len(b), maxLockoutFile)
	}
	if err := strictjson.Unmarshal(b, &f); err != nil {
		return failures{}, err
	}
	if f.Failures < 0 || f.Failures > maxFailures || f.Lockouts < 0 || f.Lockouts > f.Failures {
		return failures{}, fmt.Errorf("counts %d/%d make no sense", f.Failures, f.Lockouts)
	}
	return f, nil
}

// limiter keeps the failures in a file shared by every console.
type limiter struct {
	path   string
	policy Lockout
}

// errCorruptLockout is returned (with the state to use) when the lockout
// file cannot be read as written: it counts as a lockout that started when
// the file was last written, so damaging the file never clears a lockout.
var errCorruptLockout = errors.New("lockout file unreadable")

// load returns the current failures; with errCorruptLockout the state is
// still usable (a lockout).
func (l limiter) load() (failures, error) {
	f, err := os.Open(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return failures{}, nil
	}
	if err != nil {
		return failures{}, fmt.Errorf("reading lockout file: %w", err)
	}
	defer f.Close()
	b, err := readlimit.All(f, "lockout file "+l.path, maxLockoutFile)
	if err == nil {
		var st failures
		if st, err = decodeFailures(b); err == nil {
			return st, nil
		}
	}
	since := time.Now()
	if fi, serr := f.Stat(); serr == nil {
		since = fi.ModTime()
	}
	st := failures{Failures: l.policy.Threshold, Lockouts: 1, Locked: true, Until: since.Add(l.policy.Period)}
	return st, fmt.Errorf("%w: %s: %v; counting it as a lockout until %s (remove the file as root to clear it)",
		errCorruptLockout, l.path, oneline.Of(err.Error()), st.Until.UTC().Format(time.RFC3339))
}

// attemptResult is what one password try did.
type attemptResult struct {
	ok      bool     // the password was right
	blocked bool     // not tried: a delay or lockout runs (set by another console meanwhile)
	before  failures // the state it started from
	after   failures // the state now stored
}

// attempt checks one password under the file's lock: refused without
// calling verify while a delay or lockout runs, else the outcome recorded.
func (l limiter) attempt(now time.Time, verify func() bool) (attemptResult, error) {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return attemptResult{}, fmt.Errorf("creating lockout directory: %w", err)
	}
	unlock, err := lockFile(l.path + ".lock")
	if err != nil {
		return attemptResult{}, err
	}
	defer unlock()
	st, err := l.load()
	if err != nil && !errors.Is(err, errCorruptLockout) {
		return attemptResult{}, err
	}
	r := attemptResult{before: st, after: st}
	if st.wait(now, l.policy) > 0 {
		r.blocked = true
		return r, nil
	}
	if r.ok = verify(); r.ok {
		r.after = failures{}
		return r, atomicfile.Remove(l.path)
	}
	r.after = st.fail(now, l.policy)
	return r, l.store(r.after)
}

func (l limiter) store(f failures) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(l.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("recording the wrong password: %w", err)
	}
	return nil
}

// clock is time for the console; tests replace it so delays cost nothing.
type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
