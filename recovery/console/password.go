package console

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/passhash"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// ErrNoPassword means no recovery password is set: neither the
// configuration (console.passwordHash) nor the password file holds one.
var ErrNoPassword = errors.New("no recovery password is set")

// MinPasswordLen is the shortest recovery password accepted.
const MinPasswordLen = 8

// MaxPasswordLen bounds a typed password (and so the work of hashing it).
const MaxPasswordLen = 256

// HashSource returns the recovery password's hash from the configuration
// and where it came from; an empty hash means the configuration sets none.
type HashSource func(ctx context.Context) (hash, where string, err error)

// credential is the recovery password in effect.
type credential struct {
	hash  passhash.Hash
	where string
	// file: it is the password file's (changeable on the console, upgraded
	// when old), not the configuration's.
	file bool
}

// credential finds the recovery password: the configuration's hash when it
// sets one, else the password file's. (nil, ErrNoPassword) when neither
// does; (nil, other error) when one cannot be read — the console then
// treats the password as unset and says why.
func (c *Console) credential(ctx context.Context) (*credential, error) {
	if c.cfg.ConfiguredHash != nil {
		s, where, err := c.cfg.ConfiguredHash(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the configuration: %w", err)
		}
		if s != "" {
			h, err := passhash.Parse(s)
			if err == nil && h.Scheme != passhash.Argon2id {
				err = fmt.Errorf("%w: want argon2id", passhash.ErrInvalid)
			}
			if err != nil {
				return nil, fmt.Errorf("console.passwordHash in %s: %w (make one with: tfsite console hash)", where, err)
			}
			return &credential{hash: h, where: "the configuration (" + where + ")"}, nil
		}
	}
	s, err := readPasswordHash(c.cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	h, err := passhash.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("password file %s: %w", c.cfg.PasswordFile, err)
	}
	return &credential{hash: h, where: c.cfg.PasswordFile, file: true}, nil
}

// MaxPasswordFile bounds the password file: one hash and its line break.
const MaxPasswordFile = passhash.MaxLen + 2

// readPasswordHash reads the password file.
func readPasswordHash(path string) (string, error) {
	b, err := readlimit.File(path, "recovery password file", MaxPasswordFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoPassword
	}
	if errors.Is(err, readlimit.ErrTooLarge) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("reading recovery password: %w", err)
	}
	return string(b), nil
}

// WritePasswordHash stores hash as the password file (mode 0600, atomic).
func WritePasswordHash(path, hash string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(hash+"\n"), 0o600)
}
