package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent/update"
)

func init() { register(newUpdateCmd) }

// Exit codes of `tfsite update`.
const (
	exitUpdateFailed     = 1
	exitUpdateUsage      = 2
	exitUpdateUnverified = 3
	exitUpdateNothing    = 4
)

func newUpdateCmd() *cobra.Command {
	cfg := update.Default()
	var reboot bool
	cmd := &cobra.Command{
		Use:   "update --from DIR|URL",
		Short: "Install the next version of the appliance beside this one (A/B, with automatic rollback)",
		Long: `Install a newer tfsite version into the free root slot and its boot entry
into the ESP, with systemd-sysupdate, leaving the running version untouched.
The new entry gets three boot tries: a boot counts as good once the agent is
ready (tfsite-health.service; and the API server, where this node runs one).
A version that fails three boots in a row is left for the version before it,
by the boot loader, without a person. State, the allocation and containerd's
images live on /var, which updates do not touch.

--from is a directory (e.g. a mounted USB stick or second disk) or an http(s)
URL holding tfsite_<version>.root.raw.gz, tfsite_<version>.efi, SHA256SUMS
and SHA256SUMS.gpg (hack/image-build.sh with IMAGE_FORMATS=update makes them).
Nothing is written unless SHA256SUMS's signature verifies with a key of
/etc/systemd/import-pubring.gpg, the keyring baked into the image when it was
built, and every file matches SHA256SUMS; systemd-sysupdate checks both again
over the bytes it writes (a directory is handed to it over loopback HTTP), so
a disk whose files change under it never becomes a boot entry.

Examples:
  mount -o ro /dev/vdb /mnt && tfsite update --from /mnt/tfsite-1.1 --reboot
  tfsite update --from https://updates.example.com/tfsite/

Exit codes:
  0  installed (rebooted into it with --reboot)
  1  failed while installing (the running version is untouched)
  2  usage: bad --from
  3  not verified: bad or missing signature, a file not matching SHA256SUMS
  4  no version newer than the running one`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := update.New(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				return withCode(exitUpdateUsage, err)
			}
			r.Progress = func(line string) { fmt.Fprintln(cmd.ErrOrStderr(), "  "+line) }
			fmt.Fprintf(cmd.OutOrStdout(), "tfsite update: verifying and installing from %s\n", cfg.From)
			res, err := r.Run(cmd.Context())
			switch {
			case errors.Is(err, update.ErrUnverified):
				return withCode(exitUpdateUnverified, err)
			case errors.Is(err, update.ErrNothingNewer):
				return withCode(exitUpdateNothing, err)
			case err != nil:
				return withCode(exitUpdateFailed, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tfsite update: installed %s into %s beside %s; it gets 3 boot tries, then the machine returns to %s\n",
				res.Version, res.Slot, res.Running, res.Running)
			if !reboot {
				fmt.Fprintln(cmd.OutOrStdout(), "tfsite update: reboot to use it (systemctl reboot)")
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), "tfsite update: rebooting into "+res.Version)
			if out, err := exec.Command("systemctl", "reboot").CombinedOutput(); err != nil {
				return withCode(exitUpdateFailed, fmt.Errorf("systemctl reboot: %v: %s", err, out))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.From, "from", "", "directory or http(s) URL holding the update")
	fl.BoolVar(&reboot, "reboot", false, "reboot into the new version once it is installed")
	return cmd
}
