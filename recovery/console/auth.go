package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/passhash"
)

// ErrWrongPassword is returned when the recovery password does not match.
var ErrWrongPassword = errors.New("wrong recovery password: nothing was done")

// ErrLocked is returned while wrong passwords keep the console locked.
var ErrLocked = errors.New("locked after wrong recovery passwords: nothing was done")

// howToSet is what the console says when no password is set.
const howToSet = "set console.passwordHash in the configuration (NoCloud user-data, " +
	"/etc/tfsite/config.yaml or tfsite.config= on the kernel command line; " +
	"tfsite console hash makes one); see docs/recovery.md"

func (c *Console) readSecret(ctx context.Context, q string) (string, error) {
	c.printf("%s", q)
	setEcho(c.tty, false)
	line, err := c.in.readLine(ctx)
	setEcho(c.tty, true)
	c.printf("\r\n")
	return line, err
}

// authorize decides whether entry e may run: open entries always; with a
// recovery password set, the others after it is typed; with none set, the
// network-recovery entries run and the rest are refused.
func (c *Console) authorize(ctx context.Context, e entry) error {
	c.cred = nil
	if e.access == open {
		return nil
	}
	cred, err := c.credential(ctx)
	c.noPassword = cred == nil
	if cred == nil {
		if !errors.Is(err, ErrNoPassword) {
			c.log.Error("console: recovery password unusable; treated as not set", "tty", c.cfg.TTY, "err", err)
			c.printf("%s\r\n", wrap(oneline.Of(err.Error()), 79))
		}
		if e.access == recovery {
			c.printf("No recovery password is set: network recovery runs without one.\r\n")
			c.log.Info("console: network recovery without a recovery password", "tty", c.cfg.TTY, "entry", e.label)
			return nil
		}
		c.log.Warn("console: entry refused, no recovery password set", "tty", c.cfg.TTY, "entry", e.label)
		return fmt.Errorf("%w: %s stays closed until one is; %s", ErrNoPassword, e.label, howToSet)
	}
	if err := c.checkPassword(ctx, cred); err != nil {
		return err
	}
	c.cred = cred
	return nil
}

// checkPassword waits out a delay left by wrong passwords (refusing during
// a lockout), reads the password, and records the outcome.
func (c *Console) checkPassword(ctx context.Context, cred *credential) error {
	st, err := c.limit.load()
	if err != nil {
		c.log.Error("console: lockout state", "tty", c.cfg.TTY, "err", err)
		if !errors.Is(err, errCorruptLockout) {
			return err
		}
	}
	if wait := st.wait(c.clock.Now(), c.cfg.Lockout); wait > 0 {
		if st.Locked {
			return fmt.Errorf("%w: %d wrong in a row; try again in %s", ErrLocked, st.Failures, wait.Round(time.Second))
		}
		c.printf("Waiting %s after %d wrong passwords...\r\n", wait.Round(time.Millisecond), st.Failures)
		if err := c.clock.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	pw, err := c.readSecret(ctx, "Recovery password: ")
	if err != nil {
		return err
	}
	res, err := c.limit.attempt(c.clock.Now(), func() bool { return len(pw) <= MaxPasswordLen && cred.hash.Verify(pw) })
	if err != nil {
		return err
	}
	after := res.after
	switch {
	case res.blocked:
		// Another console recorded a wrong password while this one read.
		return fmt.Errorf("%w: a wrong password on another console; try again in %s", ErrLocked,
			after.wait(c.clock.Now(), c.cfg.Lockout).Round(time.Second))
	case !res.ok && after.Locked:
		lock := after.wait(c.clock.Now(), c.cfg.Lockout)
		c.log.Error("console: locked after wrong recovery passwords", "tty", c.cfg.TTY, "failures", after.Failures,
			"lockedFor", lock, "until", after.Until.UTC())
		return fmt.Errorf("%w (%d wrong in a row: locked for %s)", ErrWrongPassword, after.Failures, lock)
	case !res.ok:
		next := after.wait(c.clock.Now(), c.cfg.Lockout)
		c.log.Warn("console: wrong recovery password", "tty", c.cfg.TTY, "failures", after.Failures, "nextTryIn", next)
		return fmt.Errorf("%w (%d wrong in a row; next try in %s)", ErrWrongPassword, after.Failures, next)
	}
	if res.before.Failures > 0 {
		c.log.Info("console: recovery password accepted after wrong ones", "tty", c.cfg.TTY, "failures", res.before.Failures)
	}
	if cred.file && cred.hash.NeedsUpgrade(c.cfg.Hash) {
		c.upgrade(cred, pw)
	}
	return nil
}

// upgrade rewrites an old password file's hash at the current parameters
// (the password was just checked against it); a failure is logged and the
// old hash keeps working.
func (c *Console) upgrade(cred *credential, pw string) {
	from := cred.hash.Scheme
	if from == passhash.Argon2id {
		from = fmt.Sprintf("argon2id m=%d,t=%d", cred.hash.Params.Memory, cred.hash.Params.Time)
	}
	h, err := passhash.New(pw, c.cfg.Hash)
	if err == nil {
		err = WritePasswordHash(c.cfg.PasswordFile, h)
	}
	if err != nil {
		c.log.Error("console: upgrading the recovery password hash failed; the old one stays", "file", c.cfg.PasswordFile, "err", err)
		return
	}
	c.log.Info("console: recovery password hash upgraded", "file", c.cfg.PasswordFile, "from", from, "to", fmt.Sprintf("argon2id m=%d,t=%d", c.cfg.Hash.Memory, c.cfg.Hash.Time))
}

// newPassword asks for a new password twice and stores its hash.
func (c *Console) newPassword(ctx context.Context) error {
	pw, err := c.readSecret(ctx, fmt.Sprintf("New recovery password (%d to %d characters): ", MinPasswordLen, MaxPasswordLen))
	if err != nil {
		return err
	}
	if err := checkNewPassword(pw); err != nil {
		return fmt.Errorf("%w; nothing was changed", err)
	}
	again, err := c.readSecret(ctx, "Repeat it: ")
	if err != nil {
		return err
	}
	if again != pw {
		return errors.New("the two passwords differ; nothing was changed")
	}
	h, err := passhash.New(pw, c.cfg.Hash)
	if err != nil {
		return err
	}
	if err := WritePasswordHash(c.cfg.PasswordFile, h); err != nil {
		return fmt.Errorf("storing the recovery password: %w", err)
	}
	c.log.Info("console: recovery password changed", "tty", c.cfg.TTY, "file", c.cfg.PasswordFile)
	c.printf("Recovery password set.\r\n")
	return nil
}

func checkNewPassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return fmt.Errorf("password of %d characters: want %d to %d", len(pw), MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// HashNewPassword checks a new recovery password's length and returns its
// argon2id hash at the recommended parameters (tfsite console hash).
func HashNewPassword(pw string) (string, error) {
	if err := checkNewPassword(pw); err != nil {
		return "", err
	}
	return passhash.New(pw, passhash.Recommended)
}

// setPassword changes the password file's password; one that comes from
// the configuration is changed there.
func (c *Console) setPassword(ctx context.Context) error {
	if c.cred != nil && !c.cred.file {
		return fmt.Errorf("the recovery password comes from %s: change console.passwordHash there (tfsite console hash makes one)", c.cred.where)
	}
	return c.newPassword(ctx)
}
