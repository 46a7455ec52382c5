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
