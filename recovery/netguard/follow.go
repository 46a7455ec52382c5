package netguard

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TryRequest runs the window of a handed-over request (the guard process's
// side of handoff.go). When it ends before anything was applied (busy,
// corrupt record, the plan no longer valid on this host) the reason is also
// written for the foreground (WriteRefusal).
func (g *Guard) TryRequest(ctx context.Context, r *Request) (Outcome, error) {
	out, err := g.try(ctx, r.ID, r.Plan)
	var na *notApplied
	if errors.As(err, &na) {
		if werr := g.store.WriteRefusal(r.ID, err); werr != nil {
			g.log.Warn("telling tfsite net try why the change was not applied", "id", r.ID, "err", werr)
		}
	}
	return out, err
}

// followPoll is how often Follow looks at the state dir.
const followPoll = 50 * time.Millisecond

// Follow waits for the end of change id, handed to a guard process with
// Store.WriteRequest, and returns its outcome as Try would: the journal's
// confirmed or reverted event, or the guard's refusal. Cancelling ctx
// (SIGINT/SIGTERM in the foreground) withdraws a request not claimed yet, or
// asks the guard to roll back (as `tfsite net rollback`) and goes on
// waiting for it. When the guard process is gone and the deadline passed,
// Follow reverts the change itself, naming actor in the journal (as Watcher).
func (g *Guard) Follow(ctx context.Context, id, actor string) (Outcome, error) {
	t := time.NewTicker(followPoll)
	defer t.Stop()
	done := ctx.Done()
	startBy := time.Now().Add(StartTimeout)
	var lastOrphanCheck time.Time
	for {
		if err, ok := g.store.takeRefusal(id); ok {
			return Outcome{ID: id}, err
		}
		e, found, err := g.store.lastEvent(id)
		if err != nil {
			return Outcome{ID: id}, err
		}
		if found {
			return outcomeOf(e)
		}
		p, perr := g.store.Pending()
		ours := perr == nil && p.ID == id
		switch {
		case ours && !g.now().Before(p.Deadline) && time.Since(lastOrphanCheck) >= g.cfg.Interval:
			lastOrphanCheck = time.Now()
			if _, err := g.RevertOrphan(actor); err != nil {
				return Outcome{ID: id}, err
			}
		case !ours && time.Now().After(startBy):
			if g.store.CancelRequest(id) {
				return Outcome{ID: id}, fmt.Errorf("the guard process did not take change %s within %s; nothing was changed", id, StartTimeout)
			}
			if err, ok := g.store.takeRefusal(id); ok {
				return Outcome{ID: id}, err
			}
			if _, found, _ := g.store.lastEvent(id); !found && !g.store.requestWaiting(id) {
				// Claimed long ago, yet neither recorded nor refused nor
				// ended: the guard died before recording the change, and
				// nothing is applied before that.
				return Outcome{ID: id}, fmt.Errorf("the guard process ended before recording change %s; nothing was changed", id)
			}
		}
		select {
		case <-done:
			done = nil
			if g.store.CancelRequest(id) {
				return Outcome{ID: id}, fmt.Errorf("%w: interrupted before change %s was applied; nothing was changed", ErrReverted, id)
			}
			if err := g.store.WriteDecision(id, DecisionRollback); err != nil {
				return Outcome{ID: id}, fmt.Errorf("interrupted: asking the guard process to roll back change %s: %w", id, err)
			}
			g.log.Info("interrupted: rolling back", "id", id)
		case <-t.C:
		}
	}
}

// outcomeOf turns how a change ended in the journal into Try's result.
func outcomeOf(e Event) (Outcome, error) {
	out := Outcome{ID: e.ID, Reason: e.Reason, Ended: e.Time}
	switch e.Event {
	case EventConfirmed:
		out.Confirmed = true
		return out, nil
	case EventReverted:
		return out, fmt.Errorf("%w: %s", ErrReverted, e.Reason)
	}
	return out, fmt.Errorf("change %s ended as %s: %s; its record stays for `tfsite net recover`", e.ID, e.Event, e.Reason)
}
