// Command tfsite is the tfsite node agent and its operator CLI.
//
// This file only assembles subcommands; each lives in its own file and
// calls into agent/... or recovery/... for the work.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/cmd/internal/cli"
	"github.com/tfsite/tfsite/internal/version"
)

// subcommands is filled by each subcommand file's init().
var subcommands []func() *cobra.Command

func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }

// exitError carries a documented exit code out of a subcommand.
type exitError = cli.ExitError

// withCode wraps err so that main exits with code.
func withCode(code int, err error) error { return cli.WithCode(code, err) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tfsite",
		Short: "Boot a Tungsten Fabric Kubernetes site that finds its gateway, its peers and its numbers by itself",
		Long: `tfsite is the node agent of the tfsite appliance. It discovers the underlay gateway
(DHCP + the kernel's routes), agrees with peer sites on a unique BGP ASN and
non-overlapping pod/service/fabric prefixes, brings up kubeadm and Tungsten Fabric
from that allocation, and guards network changes so an operator is never locked out.

Run "tfsite COMMAND --help" for what each command does, its flags and exit codes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the tfsite version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String())
		},
	})
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	cli.Exit("tfsite", err)
}
