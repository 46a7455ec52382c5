// Package console is the recovery console (`tfsite console`) that systemd
// starts on ttyS0 and tty1: a numbered menu that works on an 80x24 dumb
// serial terminal. Read-only entries need nothing; entries that change the
// host and the shell ask for the recovery password (stored hashed).
package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/passhash"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// Config configures the console.
type Config struct {
	PasswordFile   string   // hashed recovery password set on the console (when the configuration sets none)
	LockoutFile    string   // wrong passwords in a row, shared by every console
	AuthorizedKeys string   // where "add an SSH key" appends
	BundleDir      string   // where support bundles go
	NetStateDir    string   // netguard's state dir, copied into bundles
	Shell          string   // started by the shell entry
	RebootCommand  []string // run by the reboot entry
	UpdateCommand  []string // run by the update entry, with --from PATH added
	// ConfiguredHash reads console.passwordHash from the configuration's
	// sources, at every check (nil: the password file only).
	ConfiguredHash HashSource
	Hash           passhash.Params // argon2id cost of new hashes
	Lockout        Lockout         // delays and lockout after wrong passwords
	TTY            string          // the terminal's name, for the journal
	Clear          bool            // clear the screen with ANSI codes (not on TERM=dumb)
}

// Default returns the appliance's paths.
func Default() Config {
	return Config{
		PasswordFile:   "/var/lib/tfsite/console/password",
		LockoutFile:    "/var/lib/tfsite/console/lockout.json",
		AuthorizedKeys: "/root/.ssh/authorized_keys",
		BundleDir:      "/var/lib/tfsite/support",
		NetStateDir:    netguard.DefaultStateDir,
		Shell:          "/bin/bash",
		RebootCommand:  []string{"systemctl", "reboot"},
		UpdateCommand:  []string{"/usr/bin/tfsite", "update"},
		Hash:           passhash.Recommended,
		Lockout:        DefaultLockout(),
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, p := range []struct{ name, path string }{{"password file", c.PasswordFile}, {"lockout file", c.LockoutFile},
		{"authorized keys", c.AuthorizedKeys}, {"bundle dir", c.BundleDir}, {"shell", c.Shell}} {
		if !strings.HasPrefix(p.path, "/") {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute path", p.name, p.path))
		}
	}
	if len(c.RebootCommand) == 0 {
		errs = append(errs, errors.New("reboot command is empty"))
	}
	if err := c.Hash.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("hash parameters: %w", err))
	}
	errs = append(errs, c.Lockout.validate()...)
	return errors.Join(errs...)
}

// StatusSource is the agent's API (api.Client implements it).
type StatusSource interface {
	Status(ctx context.Context) (api.Status, error)
}

// Network is the guarded-change side (netguard.Guard implements it).
type Network interface {
	Show(lastEvents int) (netguard.Status, error)
	Rollback(ctx context.Context) (*netguard.Pending, netguard.Event, error)
	Salvage() (*netguard.Pending, error)
	SetAside(actor string) (string, error)
	Try(ctx context.Context, plan *netguard.Plan) (netguard.Outcome, error)
	Wrap(ctx context.Context, spec netguard.WrapSpec, change func(context.Context) error) (netguard.Outcome, error)
}

// Console is one console session on a terminal.
type Console struct {
	cfg   Config
	agent StatusSource
	net   Network
	log   *slog.Logger
	in    *lineReader
	tty   *os.File
	out   io.Writer
	limit limiter
	clock clock
	// cred is the password the running entry was authorized with (nil for
	// an entry that asked none).
	cred *credential
	// noPassword: the last look found no usable recovery password.
	noPassword bool
}

// New returns a console; agent and net may be nil when unavailable (the
// entries then say so).
func New(cfg Config, agent StatusSource, net Network, log *slog.Logger) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console config: %w", err)
	}
	return &Console{cfg: cfg, agent: agent, net: net, log: log, clock: realClock{},
		limit: limiter{path: cfg.LockoutFile, policy: cfg.Lockout}}, nil
}

// Close releases nothing today (the caller owns the terminal); it exists for
// the component contract and is safe to call twice.
func (c *Console) Close() {}

// Run serves the menu, reading in and writing out (both the terminal, as
// systemd's StandardInput=tty/StandardOutput=tty give it), until "0", end
// of input or ctx is done.
func (c *Console) Run(ctx context.Context, in, out *os.File) error {
	c.tty, c.out, c.in = in, out, &lineReader{f: in}
	if _, err := c.credential(ctx); err != nil {
		c.noPassword = true
		if !errors.Is(err, ErrNoPassword) {
			c.log.Error("console: recovery password unusable; treated as not set", "tty", c.cfg.TTY, "err", err)
		}
	}
	for {
		c.drawMenu()
		line, err := c.in.readLine(ctx)
		if err != nil {
			if isEnd(err) {
				return nil
			}
			return err
		}
		choice := strings.TrimSpace(line)
		if choice == "" {
			continue
		}
		e, ok := entryFor(choice)
		if !ok {
			c.printf("No entry %q: type a number from the menu.\r\n", oneline.Of(choice))
			if c.pause(ctx) != nil {
				return nil
			}
			continue
		}
		if e.run == nil {
			c.printf("Bye.\r\n")
			return nil
		}
		c.clear()
		c.printf("== %s ==\r\n", e.label)
		if err = c.authorize(ctx, e); err == nil {
			err = e.run(c, ctx)
		}
		if err != nil {
			if isEnd(err) {
				return nil
			}
			c.printf("%s\r\n", wrap(oneline.Of(err.Error()), 79))
		}
		if c.pause(ctx) != nil {
			return nil
		}
	}
}

func isEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// wrap breaks s into lines of at most width columns at spaces (a longer
// word keeps its own line), for a terminal that does not wrap.
func wrap(s string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines, line = append(lines, line), ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\r\n")
}

func (c *Console) printf(format string, a ...any) { fmt.Fprintf(c.out, format, a...) }

func (c *Console) clear() {
	if c.cfg.Clear {
		c.printf("\x1b[H\x1b[2J")
	} else {
		c.printf("\r\n")
	}
}

func (c *Console) pause(ctx context.Context) error {
	c.printf("Press Enter to return to the menu.")
	_, err := c.in.readLine(ctx)
	return err
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// prompt asks one question and returns the trimmed answer.
func (c *Console) prompt(ctx context.Context, q string) (string, error) {
	c.printf("%s", q)
	line, err := c.in.readLine(ctx)
	return strings.TrimSpace(line), err
}

// lineReader reads lines from the terminal, waking every 200 ms to notice
// a cancelled context (no goroutine keeps reading: the shell gets the
// terminal to itself).
type lineReader struct {
	f   *os.File
	buf []byte
}

func (r *lineReader) readLine(ctx context.Context) (string, error) {
	tmp := make([]byte, 256)
	for {
		if i := bytes.IndexAny(r.buf, "\r\n"); i >= 0 {
			line := string(r.buf[:i])
			j := i + 1
			if r.buf[i] == '\r' && j < len(r.buf) && r.buf[j] == '\n' {
				j++
			}
			r.buf = r.buf[j:]
			return line, nil
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		_ = r.f.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := r.f.Read(tmp)
		r.buf = append(r.buf, tmp[:n]...)
		if len(r.buf) > 4096 {
			r.buf = r.buf[len(r.buf)-4096:]
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if len(r.buf) > 0 && errors.Is(err, io.EOF) {
				line := string(r.buf)
				r.buf = nil
				return line, nil
			}
			return "", io.EOF
		}
	}
}
