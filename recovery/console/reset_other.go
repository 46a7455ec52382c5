//go:build !linux

package console

import (
	"context"
	"errors"
	"log/slog"
	"os"
)

func dhcpReset(context.Context, string, *slog.Logger) error {
	return errors.New("resetting the underlay needs Linux")
}

func setEcho(*os.File, bool) {}

// lockFile does not lock: two consoles checking passwords at the same
// moment may each count one failure (the appliance is Linux).
func lockFile(string) (func(), error) { return func() {}, nil }
