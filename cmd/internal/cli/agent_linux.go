package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tfsite/tfsite/agent"
	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/platform"
)

// Sources are the flags that choose where the layered configuration comes
// from (docs/config.md); the agent, bring-up and the console read the same.
type Sources struct {
	ConfigFile, Cmdline, NoCloud string
	// Platform says how the cloud's user-data and facts are read.
	Platform platform.Config
	// Log and Notice (the one line an operator must see on the console)
	// are given to the platform reader; both may be nil.
	Log    *slog.Logger
	Notice func(string)

	reader *platform.Reader // one per process: it keeps what it read
}

// AddFlags registers --config, --cmdline, --nocloud and the platform flags.
func (s *Sources) AddFlags(fl *pflag.FlagSet) {
	s.Platform = platform.Default()
	fl.StringVar(&s.ConfigFile, "config", "", "config file (default "+config.DefaultFile+", optional when not given)")
	fl.StringVar(&s.Cmdline, "cmdline", "/proc/cmdline", "kernel command line to read tfsite.* keys from (\"\" to ignore)")
	fl.StringVar(&s.NoCloud, "nocloud", "auto", "NoCloud seed: auto (volume labelled cidata), a directory holding user-data, or off")
	fl.StringVar(&s.Platform.Platform, "platform", s.Platform.Platform, "cloud user-data and facts: auto (DMI, then the metadata service), none, or "+strings.Join(platform.Order, ", "))
	fl.StringVar(&s.Platform.Endpoint, "metadata-endpoint", s.Platform.Endpoint, "the cloud metadata service's base URL")
	fl.StringVar(&s.Platform.DMIDir, "dmi-dir", s.Platform.DMIDir, "where the SMBIOS strings that name the platform are read")
	fl.BoolVar(&s.Platform.AllowIMDSv1, "imdsv1", false, "EC2: fall back to IMDSv1 (no session token) when IMDSv2 fails")
}

// Load reads and layers the sources (without validating the result).
func (s *Sources) Load(ctx context.Context) (config.Loaded, error) {
	src := config.Sources{File: config.DefaultFile, Cmdline: s.Cmdline}
	if s.ConfigFile != "" {
		src.File, src.FileRequired = s.ConfigFile, true
	}
	switch s.NoCloud {
	case "off", "":
	case "auto":
		src.NoCloud = config.NoCloudLabel{}
	default:
		src.NoCloud = config.NoCloudDir(s.NoCloud)
	}
	if s.Platform.Platform != "" && s.Platform.Platform != "none" {
		if s.reader == nil {
			log := s.Log
			if log == nil {
				log = slog.New(slog.DiscardHandler)
			}
			r, err := platform.New(s.Platform, log.With("component", "platform"), s.Notice)
			if err != nil {
				return config.Loaded{}, fmt.Errorf("%w: %w", config.ErrInvalid, err)
			}
			s.reader = r
		}
		src.Platform = s.reader
	}
	return config.Load(ctx, src)
}

// Logger builds the stderr logger for --log-level.
func Logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, WithCode(ExitBadConfig, fmt.Errorf("--log-level %q: use debug, info, warn or error", level))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// ConfigCode gives an invalid configuration its exit code.
func ConfigCode(err error) error {
	if errors.Is(err, config.ErrInvalid) {
		return WithCode(ExitBadConfig, err)
	}
	return err
}

// StateCode gives a damaged or lost raft store its exit code.
func StateCode(err error) error {
	switch {
	case errors.Is(err, alloc.ErrCorruptStore):
		return WithCode(ExitDamagedState, err)
	case errors.Is(err, alloc.ErrStoreLost):
		return WithCode(ExitStoreLost, err)
	}
	return err
}

// AgentShort is the agent command's one-line summary.
const AgentShort = "Run the node agent: discover the underlay, join peers, hold a unique ASN and prefixes"

// AgentLong is the agent command's help; cmd is how the reader runs it
// ("tfsite agent" or "tfsite-agent"), which the examples use.
func AgentLong(cmd string) string { return fmt.Sprintf(agentLong, cmd) }

const agentLong = `Run the tfsite node agent in the foreground (systemd runs it as Type=notify).
The appliance runs it as the small tfsite-agent binary (the same command
without the rest of the CLI: tfsite-agent --help); tfsite agent is the same.

The configuration is layered, each source overriding the ones before it:
  1. built-in defaults
  2. the cloud's facts (--platform): site name from zone and instance id,
     the public IPv4 as the advertised address
  3. the config file (--config, default /etc/tfsite/config.yaml; may be absent)
  4. the "tfsite:" key of a NoCloud seed's user-data (volume labelled cidata)
  5. the "tfsite:" key of the cloud's user-data (EC2 IMDSv2, OpenStack,
     GCE, Azure, Hetzner; found by DMI, then by the metadata service)
  6. the kernel command line (tfsite.site=, tfsite.seeds=, tfsite.config=, ...)
  7. the flags below
See docs/config.md for every field. Without a site name from any source the
agent waits in the "needs-configuration" phase (shown by tfsite status) and
re-reads its sources every few seconds.

The agent tells systemd READY=1 once the site holds a committed allocation, and
pings the watchdog while its loops are alive. Logs go to stderr. Go code runs
on one thread unless GOMAXPROCS is set.

Bringing the site up from the allocation (preflight, kubeadm init, Tungsten
Fabric, the guarded vrouter start, BGP peering) is another process, tfsite
bringup, which reads this agent's API socket; tfsite status shows its report
(docs/bringup.md).

Without a gossip key (gossip.key, gossip.keyFile, --key-file, tfsite.key=)
the agent refuses to start unless the configuration says insecure: true (or
tfsite.insecure=on): a lab setting, reported in status, metrics and the log.

Examples:
  # a one-site lab: this site is the only voter
  head -c32 /dev/urandom | base64 > /etc/tfsite/gossip.key
  %[1]s --site lab-a --voters lab-a --no-underlay --bind 192.0.2.10 --key-file /etc/tfsite/gossip.key

  # join an existing fleet through a seed, three voters
  %[1]s --config /etc/tfsite/config.yaml --seeds 10.0.0.11 --voters a,b,c

Exit codes:
  0  stopped by SIGINT/SIGTERM
  1  runtime failure (e.g. the gossip port is in use)
  2  invalid configuration (every problem is listed, one per line), including
     no gossip key without insecure: true
  7  this voter's raft store is damaged: the line names it and the way out
     (move the raft dir aside; a lone voter then restores its table)
  8  this lone voter's raft store is gone but its state dir shows it held
     the allocation table: restore it (tfsite restore) before it starts
  See docs/recovery.md, "The allocation table".`

// AgentFlags are the agent command's flags.
type AgentFlags struct {
	Sources
	logLevel                                                           string
	site, bind, advertise, keyFile, stateDir, socket, metrics, profile string
	seeds, voters                                                      []string
	noUnderlay                                                         bool

	fl *pflag.FlagSet
}

// Register defines the flags on fl.
func (f *AgentFlags) Register(fl *pflag.FlagSet) {
	f.fl = fl
	f.Sources.AddFlags(fl)
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
}

// Load layers the sources, then the flags given on the command line.
func (f *AgentFlags) Load(ctx context.Context) (config.Loaded, error) {
	l, err := f.Sources.Load(ctx)
	if err != nil {
		return l, err
	}
	var params config.CmdlineParams
	set := func(flag, key, value string) {
		if f.fl.Changed(flag) {
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

// Run runs the agent until ctx is done.
func (f *AgentFlags) Run(ctx context.Context) error {
	log, err := Logger(f.logLevel)
	if err != nil {
		return err
	}
	// GOGC=50 unless set: an agent's live heap is 1–3 MB (5 MB on a voter of
	// 500 sites), so Go's default 4 MB minimum heap target was most of its
	// anonymous memory; 50 halves that target and keeps a 500-site fleet's
	// agents at a median 14.3 MB RSS for a few % more GC CPU
	// (docs/benchmarks.md, bench-alloc).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// One Go thread unless GOMAXPROCS says otherwise: the agent waits on the
	// network, and one P halves its CPU (idle fleet of 100: 31% vs 65% of a
	// core) and let 500 agents share 2 cores (docs/benchmarks.md).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	f.Sources.Log = log
	// The agent's stdout is journal+console on the appliance: the one line
	// an operator must see there (cloud metadata that did not answer).
	f.Sources.Notice = func(line string) { fmt.Fprintln(os.Stdout, line) }
	l, err := f.Load(ctx)
	if err != nil {
		return ConfigCode(err)
	}
	a, err := agent.New(l.Config, log, agent.WithConfigSources(l.Applied),
		agent.WithReload(func(ctx context.Context) (config.Loaded, error) { return f.Load(ctx) }))
	if err != nil {
		return ConfigCode(err)
	}
	defer a.Close()
	return StateCode(a.Run(ctx))
}
