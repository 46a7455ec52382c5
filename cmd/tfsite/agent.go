package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent"
	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/peering"
)

func init() {
	register(newAgentCmd)
	register(newStatusCmd)
	register(newPeersCmd)
	register(newSiteCmd)
}

// Exit codes of the agent and API commands (documented in their --help).
const (
	exitBadConfig    = 2
	exitAgentDown    = 3
	exitNotFound     = 4
	exitRefused      = 5
	exitNotAllocated = 6
)

// agentFlags are the flags of `tfsite agent`; set ones override every source.
type agentFlags struct {
	configFile, cmdline, nocloud, logLevel                             string
	site, bind, advertise, keyFile, stateDir, socket, metrics, profile string
	seeds, voters                                                      []string
	noUnderlay                                                         bool
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: discover the underlay, join peers, hold a unique ASN and prefixes, bring the site up",
		Long: `Run the tfsite node agent in the foreground (systemd runs it as Type=notify).

The configuration is layered, each source overriding the ones before it:
  1. built-in defaults
  2. the config file (--config, default /etc/tfsite/config.yaml; may be absent)
  3. the "tfsite:" key of a NoCloud seed's user-data (volume labelled cidata)
  4. the kernel command line (tfsite.site=, tfsite.seeds=, tfsite.config=, ...)
  5. the flags below
See docs/config.md for every field. Without a site name from any source the
agent waits in the "needs-configuration" phase (shown by tfsite status) and
re-reads its sources every few seconds.

The agent tells systemd READY=1 once the site holds a committed allocation, and
pings the watchdog while its loops are alive. Logs go to stderr. Go code runs
on one thread unless GOMAXPROCS is set.

With bringUp.enabled (the appliance image's /etc/tfsite/config.yaml, or
tfsite.bringup=on) the agent then brings the site up from its allocation:
preflight (RAM, disk, kernel, runtime, versions), kubeadm init, Tungsten
Fabric's manifest (server-side apply), TF's vrouter started inside a guarded
network window (reverted and kept off the node if the host loses its underlay
gateway), and TF BGP peering with every other site. tfsite status shows each
step (docs/bringup.md).

Examples:
  # a one-site lab: this site is the only voter
  tfsite agent --site lab-a --voters lab-a --no-underlay --bind 192.0.2.10

  # join an existing fleet through a seed, three voters
  tfsite agent --config /etc/tfsite/config.yaml --seeds 10.0.0.11 --voters a,b,c

Exit codes:
  0  stopped by SIGINT/SIGTERM
  1  runtime failure (e.g. the gossip port is in use)
  2  invalid configuration (every problem is listed, one per line)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "config file (default "+config.DefaultFile+", optional when not given)")
	fl.StringVar(&f.cmdline, "cmdline", "/proc/cmdline", "kernel command line to read tfsite.* keys from (\"\" to ignore)")
	fl.StringVar(&f.nocloud, "nocloud", "auto", "NoCloud seed: auto (volume labelled cidata), a directory holding user-data, or off")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.site, "site", "", "site name")
	fl.StringSliceVar(&f.seeds, "seeds", nil, "seed addresses host[:port], comma-separated")
	fl.StringSliceVar(&f.voters, "voters", nil, "voter site names, comma-separated (the same on every site)")
	fl.StringVar(&f.bind, "bind", "", "gossip bind address[:port]")
	fl.StringVar(&f.advertise, "advertise", "", "gossip advertise address[:port]")
	fl.StringVar(&f.keyFile, "key-file", "", "gossip key file (base64, 16/24/32 bytes)")
	fl.StringVar(&f.stateDir, "state-dir", "", "state directory (default "+config.DefaultStateDir+")")
	fl.StringVar(&f.socket, "socket", "", "API socket (default "+config.DefaultAPISocket+")")
	fl.StringVar(&f.metrics, "metrics", "", "metrics host:port, or off")
	fl.StringVar(&f.profile, "gossip-profile", "", "gossip timers: lan, wan or local")
	fl.BoolVar(&f.noUnderlay, "no-underlay", false, "skip underlay (DHCP) discovery")
	return cmd
}

// load reads every source and applies the flags that were set.
func (f agentFlags) load(ctx context.Context, cmd *cobra.Command) (config.Loaded, error) {
	src := config.Sources{File: config.DefaultFile, Cmdline: f.cmdline}
	if f.configFile != "" {
		src.File, src.FileRequired = f.configFile, true
	}
	switch f.nocloud {
	case "off", "":
	case "auto":
		src.NoCloud = config.NoCloudLabel{}
	default:
		src.NoCloud = config.NoCloudDir(f.nocloud)
	}
	l, err := config.Load(ctx, src)
	if err != nil {
		return l, err
	}
	var params config.CmdlineParams
	set := func(flag, key, value string) {
		if cmd.Flags().Changed(flag) {
			params = append(params, config.CmdlineParam{Key: key, Value: value})
		}
	}
	set("site", "site", f.site)
	set("seeds", "seeds", strings.Join(f.seeds, ","))
	set("voters", "voters", strings.Join(f.voters, ","))
	set("bind", "bind", f.bind)
	set("advertise", "advertise", f.advertise)
	set("key-file", "keyfile", f.keyFile)
	set("state-dir", "statedir", f.stateDir)
	set("metrics", "metrics", f.metrics)
	if f.noUnderlay {
		params = append(params, config.CmdlineParam{Key: "underlay", Value: "off"})
	}
	if len(params) > 0 {
		if err := params.Apply(&l.Config); err != nil {
			return l, fmt.Errorf("%w: flags: %w", config.ErrInvalid, err)
		}
		l.Applied = append(l.Applied, "flags")
	}
	if f.socket != "" {
		l.Config.APISocket = f.socket
	}
	if f.profile != "" {
		l.Config.Gossip.Profile = f.profile
	}
	return l, nil
}

func runAgent(cmd *cobra.Command, f agentFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return withCode(exitBadConfig, fmt.Errorf("--log-level %q: use debug, info, warn or error", f.logLevel))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// The Go defaults (GOGC=100, 4 MB minimum heap target) are kept on
	// purpose: GOGC=50 saved ~0.7 MB RSS per agent but cost ~30% more CPU in
	// bench-alloc (docs/benchmarks.md); GOGC/GOMEMLIMIT still apply.
	// One Go thread unless GOMAXPROCS says otherwise: the agent waits on the
	// network, and one P halves its CPU (idle fleet of 100: 31% vs 65% of a
	// core) and let 500 agents share 2 cores (docs/benchmarks.md).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	ctx := cmd.Context()
	l, err := f.load(ctx, cmd)
	if err != nil {
		if errors.Is(err, config.ErrInvalid) {
			return withCode(exitBadConfig, err)
		}
		return err
	}
	a, err := agent.New(l.Config, log, agent.WithConfigSources(l.Applied),
		agent.WithReload(func(ctx context.Context) (config.Loaded, error) { return f.load(ctx, cmd) }))
	if err != nil {
		if errors.Is(err, config.ErrInvalid) {
			return withCode(exitBadConfig, err)
		}
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}

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
The release is committed through the voters' quorum; without quorum it is refused.

Examples:
  tfsite site release edge-7

Exit codes:
  0  released
  1  other error
  3  the agent is not reachable on the socket
  4  the site holds no allocation
  5  refused: the site is alive, is this site, or there is no voter quorum`,
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
