package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/peering"
	"github.com/tfsite/tfsite/cmd/internal/cli"
)

func init() {
	register(newStatusCmd)
	register(newPeersCmd)
	register(newSiteCmd)
}

// Exit codes of the agent-facing commands (cli.Exit*, documented in their --help).
const (
	exitBadConfig    = cli.ExitBadConfig
	exitAgentDown    = cli.ExitAgentDown
	exitNotFound     = cli.ExitNotFound
	exitRefused      = cli.ExitRefused
	exitNotAllocated = cli.ExitNotAllocated
)

// clientCode maps the API client's sentinel errors to exit codes.
func clientCode(err error) error {
	switch {
	case errors.Is(err, api.ErrAgentDown):
		return withCode(exitAgentDown, err)
	case errors.Is(err, api.ErrNotFound):
		return withCode(exitNotFound, err)
	case errors.Is(err, api.ErrConflict), errors.Is(err, api.ErrUnavailable):
		return withCode(exitRefused, err)
	}
	return err
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newStatusCmd() *cobra.Command {
	var socket string
	var asJSON, wait bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this site's phase, allocation, underlay and peers",
		Long: `Ask the local agent for its status over the API socket: site name, phase,
ASN and pod/service/fabric prefixes, the underlay interface and gateway found by
discovery, voter role, the last error, and every peer site with its gossip state
(alive, suspect, dead, left) and allocation.

Examples:
  tfsite status
  tfsite status --json | jq .allocation.asn
  tfsite status --socket /tmp/lab-a/api.sock

Exit codes:
  0  status printed (with --allocated: and the site holds an allocation)
  1  other error
  3  the agent is not reachable on the socket
  6  --allocated was given and the site holds no allocation yet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := api.NewClient(socket).Status(cmd.Context())
			if err != nil {
				return clientCode(err)
			}
			if asJSON {
				err = printJSON(cmd, st)
			} else {
				err = api.WriteStatus(cmd.OutOrStdout(), st)
			}
			if err == nil && wait && st.Allocation == nil {
				return withCode(exitNotAllocated, fmt.Errorf("site %q holds no allocation yet (phase %s)", st.Site, st.Phase))
			}
			return err
		},
	}
	cmd.Flags().StringVar(&socket, "socket", config.DefaultAPISocket, "agent API socket")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	cmd.Flags().BoolVar(&wait, "allocated", false, "exit 6 unless the site holds an allocation (for scripts)")
	return cmd
}

func newPeersCmd() *cobra.Command {
	var socket, format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the peer sites gossip knows, with state and allocation",
		Long: `List every other site this agent has seen through gossip: state (alive,
suspect, dead, left), gossip address, ASN and prefixes as the site published them,
and whether it is a voter. Departed sites stay listed until released.

--format bird|frr renders the same peering as BGP configuration for an upstream
router (BIRD 2 or FRR): one session per allocated peer site at its address and
ASN, importing only that site's pod prefix, exporting this site's pod prefix.
It is the same as "tfsite peering --socket S --format F".

Examples:
  tfsite peers
  tfsite peers --json | jq -r '.[] | select(.state=="dead") | .site'
  tfsite peers --format bird > /etc/bird/bird.conf && birdc configure

Exit codes:
  0  peers printed
  1  other error
  2  bad --format
  3  the agent is not reachable on the socket
  6  (--format) this site holds no allocation yet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "" {
				if asJSON {
					return withCode(2, fmt.Errorf("--format and --json exclude each other"))
				}
				local, peers, err := peeringFromAgent(cmd, socket)
				if err != nil {
					return agentParamsCode(err)
				}
				conf, err := peering.Render(format, local, peers)
				if err != nil {
					return withCode(2, err)
				}
				_, err = cmd.OutOrStdout().Write(conf)
				return err
			}
			peers, err := api.NewClient(socket).Peers(cmd.Context())
			if err != nil {
				return clientCode(err)
			}
			if asJSON {
				return printJSON(cmd, peers)
			}
			return api.WritePeers(cmd.OutOrStdout(), peers)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", config.DefaultAPISocket, "agent API socket")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the peers as JSON")
	cmd.Flags().StringVar(&format, "format", "", "render the peering as router configuration: bird or frr")
	return cmd
}

func newSiteCmd() *cobra.Command {
	site := &cobra.Command{
		Use:   "site",
		Short: "Operate on sites of the fleet (release)",
		Args:  cobra.NoArgs,
	}
	var socket string
	release := &cobra.Command{
		Use:   "release NAME",
		Short: "Free the ASN and prefixes of a site that is gone for good",
		Long: `Release a departed site's allocation so its ASN and prefixes can be given
to new sites. Departed sites keep their allocation until released: reusing the
range of a site that is still running is exactly the failure tfsite prevents, so
the agent refuses to release itself or any site gossip sees alive or suspect.
Run it on a voter: only a voter's operator may release, and the leader checks
again that the site is not alive in its own gossip and logs who asked. The
release is committed through the voters' quorum; without quorum it is refused.

Examples:
  tfsite site release edge-7

Exit codes:
  0  released
  1  other error
  3  the agent is not reachable on the socket
  4  the site holds no allocation
  5  refused: the site is alive, is this site, this site is not a voter, or
     there is no voter quorum`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.NewClient(socket).Release(cmd.Context(), args[0]); err != nil {
				return clientCode(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %s\n", args[0])
			return nil
		},
	}
	release.Flags().StringVar(&socket, "socket", config.DefaultAPISocket, "agent API socket")
	site.AddCommand(release)
	return site
}
