package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/cmd/internal/cli"
	"github.com/tfsite/tfsite/internal/readlimit"
	"github.com/tfsite/tfsite/recovery/console"
	"github.com/tfsite/tfsite/recovery/netguard"
	"github.com/tfsite/tfsite/recovery/oob"
)

func init() { register(newConsoleCmd) }

const consoleLong = `Serve the recovery console on standard input/output (systemd starts it on
ttyS0 and tty1 with StandardInput=tty). It works on an 80x24 dumb terminal:
no mouse, no colours, a clean redraw between screens (ANSI clear unless
TERM is dumb or unset).

Entries, numbered as the menu shows them:
%s

The recovery password is console.passwordHash in the configuration (read
like the agent's: --config, NoCloud seed, kernel command line; make the hash
with "tfsite console hash"), else the hash a console stored in
--password-file. With neither, nothing offers a shell: the + entries
(network recovery) run without a password and the * entries stay closed.
Wrong passwords wait 1, 2, 4, 8 s before the next try and lock every
console for 5 min after 5 in a row (doubling to 1 h), counted in
--lockout-file so a restart does not reset them, and logged to stderr
(the journal).

Examples:
  TERM=vt100 tfsite console                      # what the systemd unit runs
  tfsite console hash                            # make a console.passwordHash

Exit codes:
  0  the operator chose 0, or the terminal closed
  1  failure (e.g. the terminal is unusable)
  2  invalid flags`

func newConsoleCmd() *cobra.Command {
	cfg := console.Default()
	nf := netFlags{stateDir: netguard.DefaultStateDir, oobDir: oob.DefaultStateDir, logLevel: "info"}
	var socket string
	var src cli.Sources
	term := os.Getenv("TERM")
	cfg.Clear = term != "" && term != "dumb"
	cmd := &cobra.Command{
		Use:   "console",
		Short: "The recovery console: a numbered menu for the serial line and tty1",
		Long:  fmt.Sprintf(consoleLong, strings.TrimRight(console.MenuHelp(), "\n")),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, inOK := cmd.InOrStdin().(*os.File)
			out, outOK := cmd.OutOrStdout().(*os.File)
			if !inOK || !outOK {
				return withCode(netExitFailed, errors.New("the console needs a terminal (or file) on stdin and stdout"))
			}
			log, err := netLogger(nf.logLevel, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg.NetStateDir = nf.stateDir
			cfg.TTY = os.Getenv("TFSITE_CONSOLE_TTY")
			cfg.ConfiguredHash = func(ctx context.Context) (string, string, error) {
				l, err := src.Load(ctx)
				if err != nil {
					return "", "", err
				}
				return l.Config.Console.PasswordHash, strings.Join(l.Applied, ", "), nil
			}
			var network console.Network
			if g, err := newGuard(cmd, &nf); err == nil {
				defer g.Close()
				network = g
			} else {
				log.Warn("console without netguard", "err", err)
			}
			con, err := console.New(cfg, api.NewClient(socket), network, log)
			if err != nil {
				return withCode(netExitBadInput, err)
			}
			defer con.Close()
			if err := con.Run(cmd.Context(), in, out); err != nil && !errors.Is(err, os.ErrClosed) {
				return withCode(netExitFailed, err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	src.AddFlags(fl)
	// The console answers even when the cloud's metadata does not.
	src.Platform.Timeout = 3 * time.Second
	fl.StringVar(&socket, "socket", config.DefaultAPISocket, "the agent's API socket")
	fl.StringVar(&nf.stateDir, "state-dir", nf.stateDir, "netguard's state dir")
	fl.StringVar(&nf.oobDir, "oob-state-dir", nf.oobDir, "where the management reservation is recorded")
	fl.StringVar(&nf.logLevel, "log-level", nf.logLevel, "debug, info, warn or error (stderr: the journal)")
	fl.StringVar(&cfg.PasswordFile, "password-file", cfg.PasswordFile, "recovery password hash set on the console (used when the configuration sets none)")
	fl.StringVar(&cfg.LockoutFile, "lockout-file", cfg.LockoutFile, "count of wrong passwords, shared by every console")
	fl.StringVar(&cfg.AuthorizedKeys, "authorized-keys", cfg.AuthorizedKeys, "authorized_keys file the key entry appends to")
	fl.StringVar(&cfg.BundleDir, "bundle-dir", cfg.BundleDir, "where support bundles are written")
	fl.StringVar(&cfg.Shell, "shell", cfg.Shell, "shell started by the shell entry")
	fl.BoolVar(&cfg.Clear, "clear", cfg.Clear, "clear the screen with ANSI codes between screens")
	cmd.AddCommand(newConsoleHashCmd())
	return cmd
}

func newConsoleHashCmd() *cobra.Command {
	var write string
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Make a recovery password hash for console.passwordHash",
		Long: `Read a recovery password and print its argon2id hash (m=19456 KiB, t=2, p=1:
OWASP's recommendation) for console.passwordHash in the configuration. On a
terminal the password is asked twice without echo; from a pipe, the first
line is the password. 8 to 256 characters.

Examples:
  tfsite console hash
  printf '%s\n' "$PW" | tfsite console hash
  # NoCloud user-data:   tfsite: {console: {passwordHash: '$argon2id$v=19$...'}}
  tfsite console hash --write /var/lib/tfsite/console/password   # as root, no config

Exit codes:
  0  printed (or written)
  1  failure (e.g. writing the file)
  2  bad password (too short or long, the two differ, none given)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readNewPassword(cmd)
			if err != nil {
				return withCode(netExitBadInput, err)
			}
			h, err := console.HashNewPassword(pw)
			if err != nil {
				return withCode(netExitBadInput, err)
			}
			if write == "" {
				fmt.Fprintln(cmd.OutOrStdout(), h)
				return nil
			}
			if err := console.WritePasswordHash(write, h); err != nil {
				return withCode(netExitFailed, fmt.Errorf("writing %s: %w", write, err))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (used by the console when the configuration sets no console.passwordHash)\n", write)
			return nil
		},
	}
	cmd.Flags().StringVar(&write, "write", "", "store the hash in this password file (mode 0600) instead of printing it")
	return cmd
}

// readNewPassword asks twice without echo on a terminal, else reads one line.
func readNewPassword(cmd *cobra.Command) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		ask := func(q string) (string, error) {
			fmt.Fprint(cmd.ErrOrStderr(), q)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(cmd.ErrOrStderr())
			return string(b), err
		}
		pw, err := ask("New recovery password: ")
		if err != nil {
			return "", err
		}
		again, err := ask("Repeat it: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the two passwords differ")
		}
		return pw, nil
	}
	line, err := bufio.NewReader(readlimit.Reader(in, "the password on standard input", console.MaxPasswordLen+2)).ReadString('\n')
	if errors.Is(err, readlimit.ErrTooLarge) {
		return "", fmt.Errorf("%w; a recovery password has at most %d characters", err, console.MaxPasswordLen)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if line == "" {
		return "", errors.New("no password on standard input; type it on a terminal or pipe one line")
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}
