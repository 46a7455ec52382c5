package config

import (
	"errors"
	"fmt"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// Size limits of the configuration's inputs (docs/config.md, "Limits").
// Each is read through a limit+1 reader, so a larger input is refused with
// one line naming it and the limit, and costs no more memory than that.
const (
	// MaxConfigFile bounds the config file and a tfsite.config= file.
	MaxConfigFile = 1 << 20
	// MaxUserData bounds the NoCloud seed's whole user-data.
	MaxUserData = 1 << 20
	// MaxCmdline bounds the kernel command line file (the kernel's own
	// limit is a few KiB; --cmdline may name any file).
	MaxCmdline = 64 << 10
	// MaxKeyFile bounds gossip.keyFile (a key is 24 to 44 bytes of base64;
	// a ring during rotation a few of them).
	MaxKeyFile = 4 << 10
)

// readInput reads a configuration input at path with its limit; an
// oversized input wraps ErrInvalid (it is bad input, not an I/O failure).
func readInput(path, what string, limit int64) ([]byte, error) {
	b, err := readlimit.File(path, what, limit)
	if errors.Is(err, readlimit.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w (docs/config.md, Limits)", ErrInvalid, err)
	}
	return b, err
}
