package main

import (
	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/cmd/internal/cli"
)

// The agent itself runs on the appliance (Linux) only; the client commands
// that talk to it (status, peers, site, render, peering) build everywhere.
func init() { register(newAgentCmd) }

func newAgentCmd() *cobra.Command {
	var f cli.AgentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: cli.AgentShort,
		Long:  cli.AgentLong("tfsite agent"),
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return f.Run(cmd.Context()) },
	}
	f.Register(cmd.Flags())
	return cmd
}
