// Package cli holds what the tfsite binaries share: exit codes carried out of
// a command, the layered config sources, and the agent command's flags, help
// and run — `tfsite agent` in the CLI and the whole of the small tfsite-agent
// binary the appliance runs. It uses pflag, never cobra: cobra's
// text/template keeps every exported method in the binary, which costs the
// agent process ~2 MB RSS (docs/benchmarks.md).
package cli

import (
	"errors"
	"fmt"
	"os"
)

// Exit codes of the agent, status, peers and site commands (documented in
// each command's --help).
const (
	ExitBadConfig    = 2
	ExitAgentDown    = 3
	ExitNotFound     = 4
	ExitRefused      = 5
	ExitNotAllocated = 6
	// ExitDamagedState: the agent's raft store (or, for restore, the
	// backup file) is damaged.
	ExitDamagedState = 7
	// ExitStoreLost: a lone voter's raft store is gone; starting would
	// begin a new, empty allocation table.
	ExitStoreLost = 8
)

// ExitError carries a documented exit code out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// WithCode wraps err so that Main exits with code (nil stays nil).
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// Exit prints err as "NAME: error" on stderr and exits with its code (1
// when none); it returns when err is nil.
func Exit(name string, err error) {
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	var ee *ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.Code)
	}
	os.Exit(1)
}
