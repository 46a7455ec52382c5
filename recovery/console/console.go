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
	"github.com/tfsite/tfsite/recovery/netguard"
)

// Config configures the console.
type Config struct {
	PasswordFile   string   // hashed recovery password
	AuthorizedKeys string   // where "add an SSH key" appends
	BundleDir      string   // where support bundles go
	NetStateDir    string   // netguard's state dir, copied into bundles
	Shell          string   // started by the shell entry
	RebootCommand  []string // run by the reboot entry
	KDFIterations  int      // PBKDF2 iterations for new passwords
	Clear          bool     // clear the screen with ANSI codes (not on TERM=dumb)
}

// Default returns the appliance's paths.
func Default() Config {
	return Config{
		PasswordFile:   "/var/lib/tfsite/console/password",
		AuthorizedKeys: "/root/.ssh/authorized_keys",
		BundleDir:      "/var/lib/tfsite/support",
		NetStateDir:    netguard.DefaultStateDir,
		Shell:          "/bin/bash",
		RebootCommand:  []string{"systemctl", "reboot"},
		KDFIterations:  200_000,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for name, p := range map[string]string{"password file": c.PasswordFile, "authorized keys": c.AuthorizedKeys, "bundle dir": c.BundleDir, "shell": c.Shell} {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute path", name, p))
		}
	}
	if len(c.RebootCommand) == 0 {
		errs = append(errs, errors.New("reboot command is empty"))
	}
	if c.KDFIterations < 1000 {
		errs = append(errs, fmt.Errorf("KDF iterations %d: want at least 1000", c.KDFIterations))
	}
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
	// justSet is true right after authenticate set the first password.
	justSet bool
}

// New returns a console; agent and net may be nil when unavailable (the
// entries then say so).
func New(cfg Config, agent StatusSource, net Network, log *slog.Logger) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("console config: %w", err)
	}
	return &Console{cfg: cfg, agent: agent, net: net, log: log}, nil
}

// Close releases nothing today (the caller owns the terminal); it exists for
// the component contract and is safe to call twice.
func (c *Console) Close() {}

type entry struct {
	key, label  string
	destructive bool
	run         func(ctx context.Context) error
}

func (c *Console) entries() []entry {
	return []entry{
		{"1", "Status", false, c.status},
		{"2", "Network details", false, c.network},
		{"3", "Roll back network change", true, c.rollback},
		{"4", "Reset underlay to DHCP", true, c.resetUnderlay},
		{"5", "Static address/gateway", true, c.static},
		{"6", "Ping / traceroute", false, c.ping},
		{"7", "Add an SSH authorized key", true, c.addKey},
		{"8", "Set the console password", true, c.setPassword},
		{"9", "Write a support bundle", false, c.bundle},
		{"10", "Shell", true, c.shell},
		{"11", "Reboot", true, c.reboot},
		{"0", "Exit", false, nil},
	}
}

// Run serves the menu, reading in and writing out (both the terminal, as
// systemd's StandardInput=tty/StandardOutput=tty give it), until "0", end
// of input or ctx is done.
func (c *Console) Run(ctx context.Context, in, out *os.File) error {
	c.tty, c.out, c.in = in, out, &lineReader{f: in}
	if _, err := readPasswordHash(c.cfg.PasswordFile); errors.Is(err, ErrNoPassword) {
		c.printf("No recovery password is set. Set one now (Enter to skip; the\r\nentries marked * will ask again).\r\n")
		if err := c.newPassword(ctx, true); err != nil && !errors.Is(err, errSkipped) {
			if isEnd(err) {
				return nil
			}
			c.printf("%v\r\n", err)
		}
	}
	for {
		c.menu()
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
		var e *entry
		for _, x := range c.entries() {
			if x.key == choice {
				e = &x
				break
			}
		}
		if e == nil {
			c.printf("No entry %q: type a number from the menu.\r\n", oneLine(choice))
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
		err = nil
		c.justSet = false
		if e.destructive {
			err = c.authenticate(ctx)
		}
		if err == nil {
			err = e.run(ctx)
		}
		if err != nil {
			if isEnd(err) {
				return nil
			}
			c.printf("%s\r\n", oneLine(err.Error()))
		}
		if c.pause(ctx) != nil {
			return nil
		}
	}
}

func isEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

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

func (c *Console) menu() {
	c.clear()
	head := "tfsite recovery console"
	if c.agent != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if st, err := c.agent.Status(sctx); err == nil {
			head += fmt.Sprintf(" - site %s (%s)", st.Site, st.Phase)
		}
		cancel()
	}
	host, _ := os.Hostname()
	c.printf("%s\r\n%s\r\n\r\n", clip(head, 79), clip("host "+host, 79))
	es := c.entries()
	left, right := es[:6], es[6:]
	for i := range left {
		c.printf("%-40s%s\r\n", label(left[i]), label(right[i]))
	}
	c.printf("%40s%s\r\n\r\nEnter a number: ", "", "  * asks for the recovery password")
}

func label(e entry) string {
	star := ""
	if e.destructive {
		star = " *"
	}
	return fmt.Sprintf("%3s) %s%s", e.key, e.label, star)
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
