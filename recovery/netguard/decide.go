package netguard

// What an operator (or a boot unit, or the agent) decides about a pending
// change from outside the process guarding it: confirm, roll back, recover.

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// decide hands a decision to the live process guarding the pending change,
// or carries it out itself when that process is gone.
func (g *Guard) decide(ctx context.Context, decision string) (*Pending, Event, error) {
	p, err := g.store.Pending()
	if err != nil {
		return nil, Event{}, err
	}
	lock, err := g.store.TryLock()
	if errors.Is(err, ErrBusy) {
		if err := g.store.WriteDecision(p.ID, decision); err != nil {
			return p, Event{}, err
		}
		e, err := g.waitOutcome(ctx, p)
		return p, e, err
	}
	if err != nil {
		return p, Event{}, err
	}
	defer lock.Unlock()
	// Re-read under the lock: the guarding process may have just finished.
	if p, err = g.store.Pending(); err != nil {
		return nil, Event{}, err
	}
	if decision == DecisionConfirm {
		e := Event{ID: p.ID, Event: EventConfirmed, Reason: "confirmed by operator after its guarding process ended", Description: p.Description}
		if err := g.store.Record(e); err != nil {
			return p, e, err
		}
		return p, e, g.store.ClearPending()
	}
	reason := "rolled back by operator (tfsite net rollback)"
	if err := g.restore(p, reason); err != nil {
		return p, Event{}, err
	}
	return p, Event{ID: p.ID, Event: EventReverted, Reason: reason}, nil
}

func (g *Guard) waitOutcome(ctx context.Context, p *Pending) (Event, error) {
	limit := time.Until(p.Deadline) + 30*time.Second
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	end := time.After(limit)
	for {
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-end:
			return Event{}, fmt.Errorf("change %s is still pending after %s; see `tfsite net show`", p.ID, limit.Round(time.Second))
		case <-t.C:
		}
		if _, err := g.store.Pending(); errors.Is(err, ErrNothingPending) {
			e, found, err := g.store.lastEvent(p.ID)
			if err != nil {
				return Event{}, err
			}
			if !found {
				return Event{}, fmt.Errorf("change %s ended but the journal does not say how", p.ID)
			}
			return e, nil
		}
	}
}

// Confirm keeps the pending change.
func (g *Guard) Confirm(ctx context.Context) (*Pending, Event, error) {
	return g.decide(ctx, DecisionConfirm)
}

// Rollback reverts the pending change now.
func (g *Guard) Rollback(ctx context.Context) (*Pending, Event, error) {
	return g.decide(ctx, DecisionRollback)
}

// Recover reverts a change left pending by a process that died (run by an
// early boot unit and when the agent starts). It returns ErrNothingPending
// when there is nothing to do and ErrBusy when a live process is guarding.
func (g *Guard) Recover() (*Pending, error) {
	return g.recover(false)
}

func (g *Guard) recover(salvage bool) (*Pending, error) {
	lock, err := g.store.TryLock()
	if errors.Is(err, ErrBusy) {
		return nil, g.busyError()
	}
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	p, err := g.store.Pending()
	if errors.Is(err, ErrCorrupt) && salvage {
		return g.salvage(err)
	}
	if errors.Is(err, ErrCorrupt) {
		return nil, g.damaged(err)
	}
	if err != nil {
		return nil, err
	}
	return p, g.restore(p, fmt.Sprintf("recovered: the process guarding it (pid %d) ended before confirming", p.PID))
}
