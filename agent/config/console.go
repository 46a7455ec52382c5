package config

import (
	"fmt"

	"github.com/tfsite/tfsite/internal/passhash"
)

// Console configures the recovery console (tfsite console reads the same
// sources as the agent).
type Console struct {
	// PasswordHash is the recovery password as an argon2id PHC string
	// ($argon2id$v=19$m=19456,t=2,p=1$SALT$KEY, made by tfsite console hash).
	// Empty: no password from the configuration; the console then uses one
	// set earlier on the console, or offers no shell at all.
	PasswordHash string `json:"passwordHash,omitempty"`
}

// validate reports a hash the console could not use, one line naming the fix.
func (c Console) validate() []error {
	if c.PasswordHash == "" {
		return nil
	}
	h, err := passhash.Parse(c.PasswordHash)
	if err == nil && h.Scheme != passhash.Argon2id {
		err = fmt.Errorf("%w: %s is only read from old password files; want argon2id", passhash.ErrInvalid, h.Scheme)
	}
	if err != nil {
		return []error{fmt.Errorf("console.passwordHash: %w; make one with: tfsite console hash", err)}
	}
	return nil
}
