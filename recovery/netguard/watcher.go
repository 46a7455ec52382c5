package netguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// RevertOrphan reverts the pending change when its deadline has passed and
// no process holds the state dir's lock: the process guarding it ended
// before confirming (killed with -9, its unit stopped hard, a crash). The
// journal names actor as the one who reverted it. It returns the reverted
// change; nil and no error when there was nothing to do (nothing pending,
// the deadline ahead, or a live guard).
func (g *Guard) RevertOrphan(actor string) (*Pending, error) {
	// The record is read without the lock: a guard holds the lock for its
	// whole window, so only a change past its deadline is worth a TryLock.
	p, err := g.store.Pending()
	if errors.Is(err, ErrNothingPending) {
		return nil, nil
	}
	if errors.Is(err, ErrCorrupt) {
		return nil, g.damaged(err)
	}
	if err != nil {
		return nil, err
	}
	if g.now().Before(p.Deadline) {
		return nil, nil
	}
	lock, err := g.store.TryLock()
	if errors.Is(err, ErrBusy) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	// Re-read under the lock: the guard may have finished meanwhile, or a
	// new change started.
	if p, err = g.store.Pending(); errors.Is(err, ErrNothingPending) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if g.now().Before(p.Deadline) {
		return nil, nil
	}
	reason := fmt.Sprintf("reverted by %s: the guarding process (pid %d) ended before confirming", actor, p.PID)
	if err := g.restore(p, reason); err != nil {
		return p, err
	}
	g.log.Warn("reverted a change whose guarding process ended", "id", p.ID, "pid", p.PID, "by", actor)
	return p, nil
}

// WatchConfig configures a Watcher.
type WatchConfig struct {
	Guard    Config        // the state dir (and the settings a revert uses)
	Interval time.Duration // between looks at the pending record; 1 s by default
	Actor    string        // who reverts, as the journal names it: "tfsite-agent"
	// Report, when set, is told of every revert (an error wrapping
	// ErrReverted) and of every problem (a corrupt record, a failed revert),
	// each once until it changes.
	Report func(error)
}

// DefaultWatchInterval is how often a Watcher looks at the pending record.
const DefaultWatchInterval = time.Second

// Validate reports every problem at once.
func (c WatchConfig) Validate() error {
	var errs []error
	if err := c.Guard.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Interval < 10*time.Millisecond || c.Interval > time.Minute {
		errs = append(errs, fmt.Errorf("watch interval %s: want 10ms..1m", c.Interval))
	}
	if c.Actor == "" {
		errs = append(errs, errors.New("actor is empty: name who reverts (e.g. tfsite-agent)"))
	}
	return errors.Join(errs...)
}

// Watcher is the second line of defence behind a guard process: the agent
// runs it, and when a change is still pending past its deadline with
// nobody holding the lock, it reverts the change (RevertOrphan). It is
// level-triggered: every Interval it looks again, whatever happened before.
type Watcher struct {
	g    *Guard
	cfg  WatchConfig
	log  *slog.Logger
	last string // the problem reported last, so each is reported once
}

// NewWatcher returns a Watcher; opts are the Guard's (tests replace the kernel).
func NewWatcher(cfg WatchConfig, log *slog.Logger, opts ...Option) (*Watcher, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultWatchInterval
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("netguard watcher config: %w", err)
	}
	g, err := New(cfg.Guard, log, opts...)
	if err != nil {
		return nil, err
	}
	return &Watcher{g: g, cfg: cfg, log: g.log}, nil
}

// Run looks at the pending record every Interval until ctx is done; it
// returns nil then.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.Check()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check looks once: it reverts an orphaned change past its deadline and
// reports what it did or what is wrong. It returns the reverted change.
func (w *Watcher) Check() *Pending {
	p, err := w.g.RevertOrphan(w.cfg.Actor)
	switch {
	case err != nil:
		w.report(fmt.Errorf("network watcher: %w", err))
	case p != nil:
		w.last = ""
		w.report(fmt.Errorf("network watcher: %w by %s: %s: its guarding process (pid %d) ended before confirming", ErrReverted, w.cfg.Actor, p, p.PID))
		w.last = ""
	default:
		w.last = ""
	}
	return p
}

func (w *Watcher) report(err error) {
	if err.Error() == w.last {
		return
	}
	w.last = err.Error()
	w.log.Warn("network watcher", "err", err)
	if w.cfg.Report != nil {
		w.cfg.Report(err)
	}
}

// Close releases nothing; it exists for the component contract and is safe
// to call twice.
func (w *Watcher) Close() {}
