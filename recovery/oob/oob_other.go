//go:build !linux

package oob

import (
	"errors"
	"log/slog"
)

// Apply needs Linux (netlink policy routing).
func Apply(Config, *slog.Logger) (*Reservation, error) {
	return nil, errors.New("the management path needs Linux")
}

// HasVRF is false off Linux.
func HasVRF() bool { return false }
