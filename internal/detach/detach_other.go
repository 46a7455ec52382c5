//go:build !linux

package detach

import (
	"context"
	"errors"
	"log/slog"
)

// Start needs Linux (setsid, systemd).
func Start(context.Context, Spec, *slog.Logger) (Started, error) {
	return Started{}, errors.New("detach: starting a process outside the session needs Linux")
}
