package netguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/probe"
)

// Config configures a Guard.
type Config struct {
	StateDir string        // where pending.json and journal.json live
	Timeout  time.Duration // deadline: not healthy by then → revert
	Settle   time.Duration // healthy this long without a failure → confirmed
	Interval time.Duration // between probe rounds
	// Protected addresses no plan may take away (the management address).
	Protected []Protected
	// Targets are probed in every window, besides a plan's own targets.
	Targets []probe.Target
}

// Default returns the documented defaults: 10 s deadline, 3 s settle.
func Default() Config {
	return Config{StateDir: DefaultStateDir, Timeout: 10 * time.Second, Settle: 3 * time.Second, Interval: 250 * time.Millisecond}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("state dir is empty"))
	}
	if c.Timeout < time.Second || c.Timeout > time.Hour {
		errs = append(errs, fmt.Errorf("timeout %s: want 1s..1h", c.Timeout))
	}
	if c.Settle <= 0 || c.Settle >= c.Timeout {
		errs = append(errs, fmt.Errorf("settle %s: want more than 0 and less than the timeout (%s)", c.Settle, c.Timeout))
	}
	if c.Interval < 10*time.Millisecond || c.Interval > c.Settle {
		errs = append(errs, fmt.Errorf("probe interval %s: want 10ms..settle", c.Interval))
	}
	return errors.Join(errs...)
}

// Guard runs guarded network changes.
type Guard struct {
	cfg    Config
	log    *slog.Logger
	kernel Kernel
	prober Prober
	store  Store
	now    func() time.Time
}

// Option changes a Guard built by New.
type Option func(*Guard)

// WithKernel replaces the netlink kernel boundary.
func WithKernel(k Kernel) Option { return func(g *Guard) { g.kernel = k } }

// WithProber replaces the packet prober.
func WithProber(p Prober) Option { return func(g *Guard) { g.prober = p } }

// New returns a Guard working on the calling thread's network namespace.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("netguard config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{cfg: cfg, log: log, store: Store{Dir: cfg.StateDir}, now: time.Now}
	g.kernel, g.prober = defaultKernel()
	for _, o := range opts {
		o(g)
	}
	return g, nil
}

// Close releases nothing today; it exists for the component contract and is
// safe to call twice.
func (g *Guard) Close() {}

// Config returns the guard's configuration.
func (g *Guard) Config() Config { return g.cfg }

// Store returns the guard's state directory.
func (g *Guard) Store() Store { return g.store }

// Outcome is how a guarded window ended.
type Outcome struct {
	ID        string        `json:"id"`
	Confirmed bool          `json:"confirmed"`
	Reason    string        `json:"reason"`
	Applied   time.Time     `json:"applied"`
	Ended     time.Time     `json:"ended"`
	Restore   time.Duration `json:"restoreNs,omitempty"` // time the revert took
}

// ErrReverted is returned (wrapped) when a window ended in a revert.
var ErrReverted = errors.New("change reverted")

// NodeEvictor takes TF's vrouter off this node (the node label its
// DaemonSet selects) so it does not come back after a revert. The bring-up
// code implements it; netguard only calls it.
type NodeEvictor interface {
	EvictVrouter(ctx context.Context, reason string) error
}

// WrapSpec describes a change made by someone else (TF's vrouter agent
// taking the NIC over as vhost0) that the guard watches.
type WrapSpec struct {
	Description string
	RemoveLinks []string // deleted on revert, e.g. "vhost0"
	Probes      Probes
	Evictor     NodeEvictor // optional; called before the snapshot is restored
}

// Try validates plan against the host, records snapshot and plan durably,
// applies it and guards the window. It returns ErrReverted (wrapped) when
// the change was undone.
func (g *Guard) Try(ctx context.Context, plan *Plan) (Outcome, error) {
	return g.try(ctx, "", plan)
}

func (g *Guard) try(ctx context.Context, id string, plan *Plan) (Outcome, error) {
	p := &Pending{ID: id, Kind: "plan", Description: plan.Description, Plan: plan, RemoveLinks: plan.CreatedLinks()}
	return g.guard(ctx, p, plan.Probes, nil, func(snap *State) error {
		if _, err := plan.Validate(snap, g.cfg.Protected); err != nil {
			return err
		}
		return nil
	}, func() error {
		for i, op := range plan.Operations {
			if err := Apply(g.kernel, op); err != nil {
				return fmt.Errorf("operation %d (%s): %w", i+1, op.Op, err)
			}
		}
		return nil
	})
}

// Wrap guards change (e.g. starting TF's vrouter on this node): snapshot,
// record, run change, probe; when the host does not get healthy by the
// deadline the evictor is called, spec.RemoveLinks are deleted and the
// snapshot is restored.
func (g *Guard) Wrap(ctx context.Context, spec WrapSpec, change func(ctx context.Context) error) (Outcome, error) {
	if errs := spec.Probes.check(); len(errs) > 0 {
		return Outcome{}, fmt.Errorf("guarding %s: %w", spec.Description, joinOneLine(errs))
	}
	for _, l := range spec.RemoveLinks {
		if err := checkLinkName("remove link", l); err != nil {
			return Outcome{}, fmt.Errorf("guarding %s: %w", spec.Description, err)
		}
	}
	p := &Pending{Kind: "guard", Description: spec.Description, RemoveLinks: spec.RemoveLinks}
	return g.guard(ctx, p, spec.Probes, spec.Evictor, nil, func() error { return change(ctx) })
}

func (g *Guard) busyError() error {
	p, err := g.store.Pending()
	if err != nil {
		return fmt.Errorf("%w: another tfsite process holds %s", ErrBusy, g.store.path(lockFile))
	}
	return fmt.Errorf("%w: change %s; wait for it, or run `tfsite net confirm` / `tfsite net rollback`", ErrBusy, p)
}

// notApplied marks an error that ended a try before anything was applied
// (busy, corrupt record, invalid plan): a handed-over try reports it to the
// foreground as a refusal (Store.WriteRefusal).
type notApplied struct{ err error }

func (e *notApplied) Error() string { return e.err.Error() }
func (e *notApplied) Unwrap() error { return e.err }

// begin takes the state dir's lock and checks that a change may start: no
// other change pending, a readable journal, a snapshot the plan validates
// against. The caller unlocks.
func (g *Guard) begin(validate func(*State) error) (*Lock, *State, error) {
	lock, err := g.store.TryLock()
	if errors.Is(err, ErrBusy) {
		return nil, nil, &notApplied{g.busyError()}
	}
	if err != nil {
		return nil, nil, &notApplied{err}
	}
	fail := func(err error) (*Lock, *State, error) {
		lock.Unlock()
		return nil, nil, &notApplied{err}
	}
	switch old, err := g.store.Pending(); {
	case err == nil:
		return fail(fmt.Errorf("%w: change %s was left by a process that died; run `tfsite net recover` first", ErrBusy, old))
	case !errors.Is(err, ErrNothingPending):
		return fail(fmt.Errorf("%w; nothing was changed", err))
	}
	if _, err := g.store.Events(); err != nil {
		return fail(fmt.Errorf("%w; nothing was changed", err))
	}
	snap, err := g.kernel.Snapshot()
	if err != nil {
		return fail(fmt.Errorf("snapshotting the network: %w", err))
	}
	if validate != nil {
		if err := validate(snap); err != nil {
			return fail(fmt.Errorf("%w; nothing was changed", err))
		}
	}
	return lock, snap, nil
}

// Precheck does everything Try does before changing anything (lock, no
// change pending, readable journal, the plan valid against this host) and
// changes nothing: `tfsite net try` runs it in the foreground so that bad
// input is reported at once, before the window is handed to a guard process.
func (g *Guard) Precheck(plan *Plan) error {
	lock, _, err := g.begin(func(snap *State) error {
		_, err := plan.Validate(snap, g.cfg.Protected)
		return err
	})
	if err != nil {
		return err
	}
	lock.Unlock()
	return nil
}

func (g *Guard) guard(ctx context.Context, p *Pending, probes Probes, ev NodeEvictor, validate func(*State) error, apply func() error) (Outcome, error) {
	lock, snap, err := g.begin(validate)
	if err != nil {
		return Outcome{}, err
	}
	defer lock.Unlock()
	start := g.now().UTC()
	p.Version, p.PID, p.Started, p.Snapshot = formatV1, os.Getpid(), start, *snap
	if p.ID == "" {
		p.ID = NewID(start, os.Getpid())
	}
	p.Deadline, p.Settle = start.Add(g.cfg.Timeout), Duration(g.cfg.Settle)
	if err := g.store.WritePending(p); err != nil {
		return Outcome{}, &notApplied{fmt.Errorf("recording the pending change (nothing was changed): %w", err)}
	}
	out := Outcome{ID: p.ID, Applied: start}
	g.log.Info("guarded change applying", "id", p.ID, "description", p.Description, "deadline", g.cfg.Timeout)
	if err := apply(); err != nil {
		return g.revert(ctx, p, ev, out, "applying failed: "+err.Error())
	}
	_ = g.store.Record(Event{ID: p.ID, Event: EventApplied, Description: p.Description})
	confirmed, reason := g.window(ctx, p, probes)
	if !confirmed {
		return g.revert(ctx, p, ev, out, reason)
	}
	out.Confirmed, out.Reason, out.Ended = true, reason, g.now().UTC()
	if err := g.store.Record(Event{ID: p.ID, Event: EventConfirmed, Reason: reason, Description: p.Description}); err != nil {
		g.log.Warn("recording confirmation", "err", err)
	}
	if err := g.store.ClearPending(); err != nil {
		return out, fmt.Errorf("change %s confirmed, but clearing its record failed (a recover would revert it): %w", p.ID, err)
	}
	g.log.Info("guarded change confirmed", "id", p.ID, "reason", reason)
	return out, nil
}

const noRound = "no probe round completed"

// window probes until the change is confirmed (healthy for the settle
// time, or confirmed by an operator) or must be reverted.
func (g *Guard) window(ctx context.Context, p *Pending, probes Probes) (bool, string) {
	var healthySince time.Time
	lastFail := noRound
	for {
		switch g.store.Decision(p.ID) {
		case DecisionConfirm:
			return true, "confirmed by operator (tfsite net confirm)"
		case DecisionRollback:
			return false, "rolled back by operator (tfsite net rollback)"
		}
		now := g.now()
		if ctx.Err() != nil {
			return false, "interrupted before confirmation (signal or shutdown)"
		}
		if !now.Before(p.Deadline) {
			return false, fmt.Sprintf("not healthy within %s: %s", p.Deadline.Sub(p.Started).Round(time.Millisecond), lastFail)
		}
		full := time.Duration(p.Settle)/2 + g.cfg.Interval
		round := min(p.Deadline.Sub(now), full)
		pctx, cancel := context.WithTimeout(ctx, max(round, 50*time.Millisecond))
		err := g.check(pctx, probes)
		cancel()
		now = g.now()
		if err != nil {
			// A round cut short by the deadline says little; keep the reason
			// of the last full round when there is one.
			if round == full || healthySince.IsZero() && lastFail == noRound {
				lastFail = err.Error()
			}
			healthySince = time.Time{}
			g.log.Debug("probe failed", "id", p.ID, "err", err)
		} else {
			if healthySince.IsZero() {
				healthySince = now
			}
			if now.Sub(healthySince) >= time.Duration(p.Settle) {
				return true, fmt.Sprintf("healthy for %s", time.Duration(p.Settle))
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(g.cfg.Interval):
		}
	}
}

// check runs one probe round: the gateway answers ARP and ICMP, every
// target answers.
func (g *Guard) check(ctx context.Context, probes Probes) error {
	gw := probes.Gateway
	if gw == "" {
		gw = defaultGatewayProbe
	}
	if gw != "none" {
		var addr netip.Addr
		if gw == defaultGatewayProbe {
			s, err := g.kernel.Snapshot()
			if err != nil {
				return err
			}
			a, _, ok := s.DefaultGateway()
			if !ok {
				return errors.New("no IPv4 default gateway")
			}
			addr = a
		} else {
			addr = netip.MustParseAddr(gw)
		}
		t := probe.Target{Proto: "icmp", Addr: netip.AddrPortFrom(addr, 0)}
		if err := g.prober.ARP(ctx, t); err != nil {
			return err
		}
		if err := g.prober.Reach(ctx, t); err != nil {
			return fmt.Errorf("gateway %w", err)
		}
	}
	targets := slices.Clone(g.cfg.Targets)
	for _, s := range probes.Targets {
		t, _ := probe.Parse(s)
		targets = append(targets, t)
	}
	for _, t := range targets {
		if err := g.prober.Reach(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func (g *Guard) revert(ctx context.Context, p *Pending, ev NodeEvictor, out Outcome, reason string) (Outcome, error) {
	g.log.Warn("reverting guarded change", "id", p.ID, "reason", reason)
	if ev != nil {
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := ev.EvictVrouter(ectx, reason); err != nil {
			reason += "; taking vrouter off this node failed: " + err.Error()
		} else {
			reason += "; vrouter taken off this node"
		}
		cancel()
	}
	t0 := g.now()
	err := g.restore(p, reason)
	out.Restore, out.Ended, out.Reason = g.now().Sub(t0), g.now().UTC(), reason
	if err != nil {
		return out, err
	}
	return out, fmt.Errorf("%w: %s", ErrReverted, reason)
}

// restore puts the snapshot back and records it; the pending record stays
// when restoring failed so that recover can try again.
func (g *Guard) restore(p *Pending, reason string) error {
	if err := g.kernel.Converge(&p.Snapshot, p.RemoveLinks); err != nil {
		msg := oneline.Of(err.Error())
		_ = g.store.Record(Event{ID: p.ID, Event: EventRevertFailed, Reason: reason + "; restore failed: " + msg, Description: p.Description})
		return fmt.Errorf("reverting change %s (%s) failed, its record stays for `tfsite net recover`: %s", p.ID, reason, msg)
	}
	if err := g.store.Record(Event{ID: p.ID, Event: EventReverted, Reason: reason, Description: p.Description}); err != nil {
		g.log.Warn("recording revert", "err", err)
	}
	if err := g.store.ClearPending(); err != nil {
		return fmt.Errorf("change %s reverted, but clearing its record failed: %w", p.ID, err)
	}
	return nil
}

// Status is what `tfsite net show` reports.
type Status struct {
	State   *State   `json:"state"`
	Pending *Pending `json:"pending,omitempty"`
	Events  []Event  `json:"events"`
	Errors  []string `json:"errors,omitempty"`
}

// Show reads the host state, the pending change and the last events; it
// reports unreadable records in Errors instead of failing.
func (g *Guard) Show(lastEvents int) (Status, error) {
	var st Status
	s, err := g.kernel.Snapshot()
	if err != nil {
		return st, err
	}
	st.State = s
	if p, err := g.store.Pending(); err == nil {
		st.Pending = p
	} else if !errors.Is(err, ErrNothingPending) {
		st.Errors = append(st.Errors, err.Error())
	}
	ev, err := g.store.Events()
	if err != nil {
		st.Errors = append(st.Errors, err.Error())
	}
	if len(ev) > lastEvents {
		ev = ev[len(ev)-lastEvents:]
	}
	st.Events = ev
	return st, nil
}

// FormatEvent renders an event on one line.
func FormatEvent(e Event) string {
	s := fmt.Sprintf("%s %-13s %s", e.Time.UTC().Format(time.RFC3339), e.Event, e.ID)
	if e.Description != "" {
		s += fmt.Sprintf(" %q", e.Description)
	}
	if e.Reason != "" {
		s += ": " + strings.TrimSpace(e.Reason)
	}
	return s
}
