package netguard

// The hand-over of a try from the operator's foreground process to the
// process that guards its window outside the operator's session (`tfsite net
// guard`, started as a transient systemd unit or a detached process): a
// session that dies (SSH cut by the very change it made) must not take the
// window with it. The two talk only through the state dir: the foreground
// writes a request, the guard claims it and runs Try with the request's id;
// a refusal before anything was applied comes back as a refusal file, and
// the outcome as the journal's event for that id.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/probe"
)

const (
	requestPrefix = "request-"
	takenPrefix   = "taken-"
	refusalPrefix = "refused-"
	// maxRequestBytes bounds a request file: a plan of 256 operations is
	// far below it.
	maxRequestBytes = 1 << 20
	// handoffMaxAge is when leftover request and refusal files (their
	// foreground died before reading them) are swept.
	handoffMaxAge = time.Hour
)

// StartTimeout is how long a foreground waits for the guard process to
// claim its request and record the change before giving up.
var StartTimeout = 10 * time.Second

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9]{1,10}$`)

// NewID returns a change id: the UTC time and a process id.
func NewID(t time.Time, pid int) string {
	return t.UTC().Format("20060102T150405.000Z") + fmt.Sprintf("-%d", pid)
}

// CheckID checks that id is what NewID makes (it becomes part of file and
// unit names).
func CheckID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("change id %q: want TIME-PID as made by tfsite net try, e.g. 20261125T181000.026Z-4242", id)
	}
	return nil
}

// Request is a plan handed from `tfsite net try` to the process that guards
// its window.
type Request struct {
	Version int      `json:"version"`
	ID      string   `json:"id"`
	Plan    *Plan    `json:"plan"`
	Timeout Duration `json:"timeout"`
	Settle  Duration `json:"settle"`
	Targets []string `json:"targets,omitempty"`
}

// Config returns base with the request's window settings and targets.
func (r *Request) Config(base Config) (Config, error) {
	cfg := base
	cfg.Timeout, cfg.Settle = time.Duration(r.Timeout), time.Duration(r.Settle)
	cfg.Targets = nil
	for _, s := range r.Targets {
		t, err := probe.Parse(s)
		if err != nil {
			return Config{}, err
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("request %s: %w", r.ID, err)
	}
	return cfg, nil
}

// DecodeRequest parses and checks a request.
func DecodeRequest(data []byte) (*Request, error) {
	if len(data) > maxRequestBytes {
		return nil, fmt.Errorf("%w: request: %d bytes, more than %d", ErrCorrupt, len(data), maxRequestBytes)
	}
	var r Request
	if err := decodeStrict(data, &r); err != nil {
		return nil, fmt.Errorf("%w: request: %s", ErrCorrupt, oneline.Of(err.Error()))
	}
	var errs []error
	if r.Version != formatV1 {
		errs = append(errs, fmt.Errorf("version %d, want %d", r.Version, formatV1))
	}
	if err := CheckID(r.ID); err != nil {
		errs = append(errs, err)
	}
	if r.Plan == nil {
		errs = append(errs, errors.New("no plan"))
	} else if err := r.Plan.check(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range r.Targets {
		if _, err := probe.Parse(s); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: request: %w", ErrCorrupt, joinOneLine(errs))
	}
	return &r, nil
}

func requestFile(id string) string { return requestPrefix + id + ".json" }
func refusalFile(id string) string { return refusalPrefix + id + ".json" }

// WriteRequest records r for the guard process to claim.
func (s Store) WriteRequest(r *Request) error {
	if err := CheckID(r.ID); err != nil {
		return err
	}
	if err := s.Init(); err != nil {
		return err
	}
	r.Version = formatV1
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding request: %w", err)
	}
	return atomicfile.Write(s.path(requestFile(r.ID)), append(data, '\n'), 0o600)
}

// TakeRequest claims the request for id; ErrNothingPending when it is not
// there (withdrawn by its foreground, or claimed already).
func (s Store) TakeRequest(id string) (*Request, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	s.sweepHandoffs()
	taken := s.path(takenPrefix + id + ".json")
	// The rename decides between this claim and the foreground withdrawing
	// the request (CancelRequest): whoever moves the file first wins.
	if err := os.Rename(s.path(requestFile(id)), taken); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no request %s in %s (withdrawn by tfsite net try, or already taken)", ErrNothingPending, id, s.Dir)
	} else if err != nil {
		return nil, fmt.Errorf("claiming request %s: %w", id, err)
	}
	defer func() { _ = atomicfile.Remove(taken) }()
	r, _, err := atomicfile.Read(taken, "request", "", DecodeRequest)
	if err != nil {
		return nil, err
	}
	if r.ID != id {
		return nil, fmt.Errorf("%w: request file for %s holds change %s", ErrCorrupt, id, r.ID)
	}
	return r, nil
}

// CancelRequest withdraws the request for id; true when it was still
// unclaimed (so no guard will ever run it).
func (s Store) CancelRequest(id string) bool {
	return os.Remove(s.path(requestFile(id))) == nil
}

func (s Store) requestWaiting(id string) bool {
	_, err := os.Stat(s.path(requestFile(id)))
	return err == nil
}

// sweepHandoffs removes request and refusal files nobody collected.
func (s Store) sweepHandoffs() {
	for _, pat := range []string{requestPrefix + "*.json", takenPrefix + "*.json", refusalPrefix + "*.json"} {
		files, _ := filepath.Glob(s.path(pat))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && time.Since(fi.ModTime()) > handoffMaxAge {
				_ = os.Remove(f)
			}
		}
	}
}

// refusal is how a guard process tells the foreground that it did not
// apply the change, and why.
type refusal struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Kind    string `json:"kind,omitempty"` // the sentinel: busy, corrupt, invalid
	Error   string `json:"error"`
}

var refusalKinds = map[string]error{"busy": ErrBusy, "corrupt": ErrCorrupt, "invalid": ErrInvalidPlan}

// WriteRefusal records why the guard did not apply change id.
func (s Store) WriteRefusal(id string, cause error) error {
	r := refusal{Version: formatV1, ID: id, Error: oneline.Of(cause.Error())}
	for k, sentinel := range refusalKinds {
		if errors.Is(cause, sentinel) {
			r.Kind = k
		}
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding refusal: %w", err)
	}
	return atomicfile.Write(s.path(refusalFile(id)), append(data, '\n'), 0o600)
}

// refusedError is a guard's refusal in the foreground: its message, and
// the sentinel it wrapped so the exit code stays the same.
type refusedError struct {
	msg      string
	sentinel error
}

func (e *refusedError) Error() string { return e.msg }
func (e *refusedError) Unwrap() error { return e.sentinel }

// takeRefusal returns (and removes) the guard's refusal of change id.
func (s Store) takeRefusal(id string) (error, bool) {
	var r refusal
	data, err := os.ReadFile(s.path(refusalFile(id)))
	if err != nil {
		return nil, false
	}
	_ = atomicfile.Remove(s.path(refusalFile(id)))
	if err := decodeStrict(data, &r); err != nil || r.ID != id {
		return fmt.Errorf("%w: the guard process refused change %s, and its refusal %s does not decode", ErrCorrupt, id, s.path(refusalFile(id))), true
	}
	return &refusedError{msg: r.Error, sentinel: refusalKinds[r.Kind]}, true
}
