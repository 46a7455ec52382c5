package netguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// DefaultStateDir is where netguard keeps the pending change and its journal.
const DefaultStateDir = "/var/lib/tfsite/net"

const (
	pendingFile  = "pending.json"
	journalFile  = "journal.json"
	decisionFile = "decision"
	lockFile     = "lock"
	formatV1     = 1
	maxEvents    = 200
	maxFileBytes = 16 << 20
)

// Sentinel errors callers branch on.
var (
	ErrNothingPending = errors.New("nothing pending")
	ErrBusy           = errors.New("a guarded change is in progress")
	ErrCorrupt        = errors.New("corrupt netguard record")
	// ErrNoSnapshot is wrapped when a damaged pending record holds no
	// snapshot that could be restored: nothing was reverted.
	ErrNoSnapshot = errors.New("it holds no readable snapshot")
)

// Pending is the durable record of a change in its guarded window: enough
// to put the network back after a crash.
type Pending struct {
	Version     int       `json:"version"`
	ID          string    `json:"id"`
	Kind        string    `json:"kind"` // "plan" (tfsite net try) or "guard" (a wrapped bring-up)
	Description string    `json:"description,omitempty"`
	PID         int       `json:"pid"`
	Started     time.Time `json:"started"`
	Deadline    time.Time `json:"deadline"`
	Settle      Duration  `json:"settle"`
	// RemoveLinks are deleted on revert: links the change creates (vhost0).
	// Written before the snapshot and the plan, so that a record cut short
	// there still names them (salvage.go).
	RemoveLinks []string `json:"removeLinks,omitempty"`
	Snapshot    State    `json:"snapshot"`
	Plan        *Plan    `json:"plan,omitempty"`
}

func (p *Pending) String() string {
	d := p.Description
	if d == "" {
		d = p.Kind
	}
	return fmt.Sprintf("%s (%q, pid %d, deadline %s)", p.ID, d, p.PID, p.Deadline.UTC().Format(time.RFC3339))
}

// Event is one line of the journal.
type Event struct {
	Time        time.Time `json:"time"`
	ID          string    `json:"id"`
	Event       string    `json:"event"` // applied, confirmed, reverted, revert-failed, apply-failed
	Reason      string    `json:"reason,omitempty"`
	Description string    `json:"description,omitempty"`
}

// Journal events.
const (
	EventApplied      = "applied"
	EventConfirmed    = "confirmed"
	EventReverted     = "reverted"
	EventRevertFailed = "revert-failed"
	// EventSetAside: a damaged record with nothing to restore was moved
	// aside so that new changes (the console's network reset) can run.
	EventSetAside = "set-aside"
)

type journalDoc struct {
	Version int     `json:"version"`
	Events  []Event `json:"events"`
}

func decodeStrict(data []byte, v any) error {
	if len(data) > maxFileBytes {
		return fmt.Errorf("%d bytes, more than %d", len(data), maxFileBytes)
	}
	return strictjson.Unmarshal(data, v)
}

// DecodePending parses and checks a pending record.
func DecodePending(data []byte) (*Pending, error) {
	var p Pending
	if err := decodeStrict(data, &p); err != nil {
		return nil, fmt.Errorf("%w: pending change: %s", ErrCorrupt, oneline.Of(err.Error()))
	}
	var errs []string
	if p.Version != formatV1 {
		errs = append(errs, fmt.Sprintf("version %d, want %d", p.Version, formatV1))
	}
	if p.ID == "" {
		errs = append(errs, "no id")
	}
	if p.Kind != "plan" && p.Kind != "guard" {
		errs = append(errs, fmt.Sprintf("kind %q, want plan or guard", p.Kind))
	}
	if p.Started.IsZero() || p.Deadline.Before(p.Started) {
		errs = append(errs, "deadline before start")
	}
	for _, err := range checkSnapshot(&p.Snapshot) {
		errs = append(errs, err.Error())
	}
	if err := checkLinks(p.RemoveLinks); err != nil {
		errs = append(errs, err.Error())
	}
	if p.Plan != nil {
		if err := p.Plan.check(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: pending change: %s", ErrCorrupt, strings.Join(errs, "; "))
	}
	return &p, nil
}

func linkNames(ls []Link) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Name
	}
	return out
}

// DecodeJournal parses and checks a journal.
func DecodeJournal(data []byte) ([]Event, error) {
	var d journalDoc
	if err := decodeStrict(data, &d); err != nil {
		return nil, fmt.Errorf("%w: journal: %s", ErrCorrupt, oneline.Of(err.Error()))
	}
	if d.Version != formatV1 {
		return nil, fmt.Errorf("%w: journal: version %d, want %d", ErrCorrupt, d.Version, formatV1)
	}
	for i, e := range d.Events {
		if e.ID == "" || e.Event == "" || e.Time.IsZero() {
			return nil, fmt.Errorf("%w: journal: event %d lacks id, event or time", ErrCorrupt, i+1)
		}
	}
	return d.Events, nil
}

// Store is netguard's state directory.
type Store struct{ Dir string }

func (s Store) path(name string) string { return filepath.Join(s.Dir, name) }

// Init creates the state directory.
func (s Store) Init() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	return nil
}

// Pending returns the pending change, ErrNothingPending when there is none.
func (s Store) Pending() (*Pending, error) {
	p, found, err := atomicfile.Read(s.path(pendingFile), "pending change", "", DecodePending)
	if err == nil && !found {
		return nil, ErrNothingPending
	}
	return p, err
}

// WritePending records p durably, its description cut to MaxDescription.
func (s Store) WritePending(p *Pending) error {
	q := *p
	q.Description = clampText(q.Description, MaxDescription)
	if q.Plan != nil {
		plan := *q.Plan
		plan.Description = clampText(plan.Description, MaxDescription)
		q.Plan = &plan
	}
	data, err := json.MarshalIndent(&q, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding pending change: %w", err)
	}
	return atomicfile.Write(s.path(pendingFile), append(data, '\n'), 0o600)
}

// ClearPending removes the pending record and any decision for it.
func (s Store) ClearPending() error {
	if err := atomicfile.Remove(s.path(decisionFile)); err != nil {
		return err
	}
	return atomicfile.Remove(s.path(pendingFile))
}

// Events returns the journal, oldest first.
func (s Store) Events() ([]Event, error) {
	ev, _, err := atomicfile.Read(s.path(journalFile), "journal", "it is only history: move it aside to go on", DecodeJournal)
	return ev, err
}

// Record appends an event to the journal, keeping the newest maxEvents,
// each with its reason cut to MaxReason and its description to
// MaxDescription (events written before these limits included).
func (s Store) Record(e Event) error {
	ev, err := s.Events()
	if err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	ev = append(ev, e)
	if len(ev) > maxEvents {
		ev = ev[len(ev)-maxEvents:]
	}
	for i := range ev {
		ev[i].Reason = clampText(ev[i].Reason, MaxReason)
		ev[i].Description = clampText(ev[i].Description, MaxDescription)
	}
	data, err := json.MarshalIndent(journalDoc{Version: formatV1, Events: ev}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding journal: %w", err)
	}
	return atomicfile.Write(s.path(journalFile), append(data, '\n'), 0o600)
}

// lastEvent returns the newest event of change id other than "applied":
// how it ended.
func (s Store) lastEvent(id string) (Event, bool, error) {
	ev, err := s.Events()
	if err != nil {
		return Event{}, false, err
	}
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].ID == id && ev[i].Event != EventApplied {
			return ev[i], true, nil
		}
	}
	return Event{}, false, nil
}

// Decisions a second process hands to the one running the window.
const (
	DecisionConfirm  = "confirm"
	DecisionRollback = "rollback"
)

// WriteDecision asks the process guarding change id to confirm or roll back.
func (s Store) WriteDecision(id, decision string) error {
	return atomicfile.Write(s.path(decisionFile), []byte(id+" "+decision+"\n"), 0o600)
}

// Decision returns the decision for change id, "" when none.
func (s Store) Decision(id string) string {
	data, err := os.ReadFile(s.path(decisionFile))
	if err != nil {
		return ""
	}
	gotID, d, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
	if gotID != id {
		return ""
	}
	return d
}

// Lock is held by the process that runs a guarded window.
type Lock struct{ f *os.File }

// TryLock takes the state dir's lock without waiting; ErrBusy when another
// live process holds it. The kernel drops it when that process dies.
func (s Store) TryLock() (*Lock, error) {
	if err := s.Init(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.path(lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrBusy) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("locking %s: %w", s.path(lockFile), err)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock; safe to call twice.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = unlock(l.f)
	_ = l.f.Close()
	l.f = nil
}
