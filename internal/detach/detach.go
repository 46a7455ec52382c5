// Package detach starts a process outside the caller's session, so that
// what ends the caller's session (an SSH connection cut, its terminal hung
// up, its process group or login scope killed) does not end the process:
// tfsite uses it for the process that guards a network change's window,
// which must outlive an operator's session cut by the very change.
//
// Where systemd is PID 1 and this process shares PID 1's network namespace,
// the process is a transient system service (D-Bus StartTransientUnit, in
// system.slice: no SSH session scope, not killed with one); otherwise
// (containers, CI, a network namespace of its own) it is a child in a new
// session (setsid), SIGHUP ignored, no controlling terminal, stdin from
// /dev/null and stdout/stderr appended to a log file.
package detach

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
)

// Spec says what to start.
type Spec struct {
	// Argv is the program (an absolute path) and its arguments.
	Argv []string
	// Unit is the transient unit's name when systemd starts it, e.g.
	// "tfsite-net-guard-ID.service".
	Unit string
	// Description is the unit's description.
	Description string
	// LogFile receives stdout and stderr of a setsid process (appended;
	// truncated first when past MaxLogBytes). Systemd's unit logs to the journal.
	LogFile string
}

// MaxLogBytes is the size past which LogFile is truncated before a start.
const MaxLogBytes = 1 << 20

var unitPattern = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]{1,246}\.service$`)

// Validate reports every problem at once.
func (s Spec) Validate() error {
	var errs []error
	if len(s.Argv) == 0 || !filepath.IsAbs(s.Argv[0]) {
		errs = append(errs, fmt.Errorf("program %q: want an absolute path", s.Argv))
	}
	if !unitPattern.MatchString(s.Unit) {
		errs = append(errs, fmt.Errorf("unit name %q: want NAME.service of letters, digits and :_.-", s.Unit))
	}
	if !filepath.IsAbs(s.LogFile) {
		errs = append(errs, fmt.Errorf("log file %q: want an absolute path", s.LogFile))
	}
	return errors.Join(errs...)
}

// Started says how the process runs, for messages ("transient unit
// tfsite-net-guard-ID.service (journalctl -u ...)" or "process 4242 (log ...)").
type Started struct {
	Unit string // set when systemd runs it
	PID  int    // set for a setsid process
	Log  string // where its output goes
}

func (s Started) String() string {
	if s.Unit != "" {
		return fmt.Sprintf("transient unit %s (log: journalctl -u %s)", s.Unit, s.Unit)
	}
	return fmt.Sprintf("process %d in a session of its own (log: %s)", s.PID, s.Log)
}
