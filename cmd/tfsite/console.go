package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/recovery/console"
	"github.com/tfsite/tfsite/recovery/netguard"
	"github.com/tfsite/tfsite/recovery/oob"
)

func init() { register(newConsoleCmd) }

func newConsoleCmd() *cobra.Command {
	cfg := console.Default()
	nf := netFlags{stateDir: netguard.DefaultStateDir, oobDir: oob.DefaultStateDir, logLevel: "warn"}
	var socket string
	term := os.Getenv("TERM")
	cfg.Clear = term != "" && term != "dumb"
	cmd := &cobra.Command{
		Use:   "console",
		Short: "The recovery console: a numbered menu for the serial line and tty1",
		Long: `Serve the recovery console on standard input/output (systemd starts it on
ttyS0 and tty1 with StandardInput=tty). It works on an 80x24 dumb terminal:
no mouse, no colours, a clean redraw between screens (ANSI clear unless
TERM is dumb or unset).

Entries: 1 status (site, phase, ASN, prefixes, peers, last network event),
2 network details, 3 roll back the pending network change, 4 set a static
address/gateway (guarded: reverted unless the gateway answers), 5 ping /
traceroute, 6 add an SSH authorized key, 7 set the console password,
8 write a support bundle, 9 shell, 10 reboot, 0 exit. Entries that change
the host and the shell ask for the recovery password (stored as a
PBKDF2-SHA256 hash); with none set, the console asks for one first.

Example (what the systemd unit runs):
  TERM=vt100 tfsite console

Exit codes:
  0  the operator chose 0, or the terminal closed
  1  failure (e.g. the terminal is unusable)
  2  invalid flags`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := netLogger(nf.logLevel, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg.NetStateDir = nf.stateDir
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
			if err := con.Run(cmd.Context(), os.Stdin, os.Stdout); err != nil && !errors.Is(err, os.ErrClosed) {
				return withCode(netExitFailed, err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&socket, "socket", config.DefaultAPISocket, "the agent's API socket")
	fl.StringVar(&nf.stateDir, "state-dir", nf.stateDir, "netguard's state dir")
	fl.StringVar(&nf.oobDir, "oob-state-dir", nf.oobDir, "where the management reservation is recorded")
	fl.StringVar(&cfg.PasswordFile, "password-file", cfg.PasswordFile, "hashed recovery password")
	fl.StringVar(&cfg.AuthorizedKeys, "authorized-keys", cfg.AuthorizedKeys, "authorized_keys file the key entry appends to")
	fl.StringVar(&cfg.BundleDir, "bundle-dir", cfg.BundleDir, "where support bundles are written")
	fl.StringVar(&cfg.Shell, "shell", cfg.Shell, "shell started by the shell entry")
	fl.BoolVar(&cfg.Clear, "clear", cfg.Clear, "clear the screen with ANSI codes between screens")
	return cmd
}
