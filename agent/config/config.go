// Package config is the agent's typed configuration: defaults, validation and
// the sources it is read from (kernel command line, NoCloud seed, file).
package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tfsite/tfsite/agent/pools"
	"github.com/tfsite/tfsite/agent/sitename"
	"github.com/tfsite/tfsite/internal/hostport"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// Subdirectories of StateDir.
const (
	// NetStateDir holds the pending and journalled network changes of
	// `tfsite net` and of bring-up's guarded vrouter start.
	NetStateDir = "net"
	// BringUpStateDir holds bring-up's files (kubeadm.yaml, logs, the
	// vrouter marker, the status report the agent serves).
	BringUpStateDir = "bringup"
)

// Default locations of the appliance.
const (
	DefaultFile           = "/etc/tfsite/config.yaml"
	DefaultStateDir       = "/var/lib/tfsite"
	DefaultAPISocket      = "/run/tfsite/api.sock"
	DefaultMetricsAddress = "127.0.0.1:9465"
	DefaultGossipPort     = 7946 // the components' own defaults: TestConfigDefaultsAreTheComponents
	// DefaultAllocatorPort is the allocator's raft + RPC port.
	DefaultAllocatorPort = 7947
	// DefaultDiscoverTimeout bounds one DHCP discovery of the underlay.
	DefaultDiscoverTimeout = 10 * time.Second
)

// Config is everything the agent needs to run. Its YAML form is documented
// field by field in docs/config.md.
type Config struct {
	// Site is this site's unique name; empty means the agent waits in the
	// needs-configuration phase.
	Site string `json:"site"`
	// Gossip configures membership (memberlist).
	Gossip Gossip `json:"gossip"`
	// Allocator configures the allocation endpoint (raft + RPC) of voters.
	Allocator Allocator `json:"allocator"`
	// Voters are the site names whose quorum commits allocations. Every site
	// must be configured with the same set.
	Voters []string `json:"voters"`
	// Pools are the ranges allocations are carved from.
	Pools pools.Pools `json:"pools"`
	// StateDir holds durable state (allocation record, raft log of voters).
	StateDir string `json:"stateDir"`
	// APISocket is the unix socket of the local API (tfsite status).
	APISocket string `json:"apiSocket"`
	// APISocketGroup, when set, makes the socket mode 0660 owned by this group
	// (name or numeric gid); otherwise it is 0600 (root only).
	APISocketGroup string `json:"apiSocketGroup,omitempty"`
	// MetricsAddress is host:port of the Prometheus /metrics endpoint; empty disables it.
	MetricsAddress string `json:"metricsAddress"`
	// ManagementInterface is kept out of underlay discovery and Tungsten Fabric.
	ManagementInterface string `json:"managementInterface,omitempty"`
	// Underlay configures gateway discovery.
	Underlay Underlay `json:"underlay"`
	// BringUp configures what the agent does once the site holds an
	// allocation: preflight, kubeadm init, TF, the guarded vrouter start and
	// TF BGP peering (docs/bringup.md).
	BringUp BringUp `json:"bringUp"`
	// Insecure is lab mode: the agent may run without a gossip key (gossip
	// is then unencrypted and anyone who reaches a voter may ask it for
	// allocations), and what is refused as insecure elsewhere (a key file
	// others can read, the docs' example key) is only logged as a warning.
	// Never on a production site; status and logs say so loudly.
	Insecure bool `json:"insecure,omitempty"`
	// Console configures the recovery console (its password).
	Console Console `json:"console"`
}

// BringUp configures the agent-driven bring-up of the site's Kubernetes and
// Tungsten Fabric. It is off by default (allocation-only labs, the demo and
// the benchmarks); the appliance image turns it on in /etc/tfsite/config.yaml.
type BringUp struct {
	// Enabled turns bring-up on (kernel command line tfsite.bringup=on).
	Enabled bool `json:"enabled"`
	// Kubeconfig is the admin kubeconfig; when it exists the cluster exists
	// and kubeadm init is not run again.
	Kubeconfig string `json:"kubeconfig"`
	// Kubeadm is the kubeadm binary (PATH is searched).
	Kubeadm string `json:"kubeadm"`
	// KubeadmArgs are appended to `kubeadm init --config FILE`.
	KubeadmArgs []string `json:"kubeadmArgs,omitempty"`
	// Preflight sets the host checks run before kubeadm init.
	Preflight Preflight `json:"preflight"`
	// TFRegistry and TFTag select TF's container images (defaults in docs/bringup.md).
	TFRegistry string `json:"tfRegistry,omitempty"`
	TFTag      string `json:"tfTag,omitempty"`
	// ConfigAPI is TF's config API (VNC) URL; empty means http://<underlay address>:8082.
	ConfigAPI string `json:"configAPI,omitempty"`
	// GuardWindow is how long the host may stay without its underlay gateway
	// after vrouter starts before vrouter is taken off the node and the
	// network restored.
	GuardWindow Duration `json:"guardWindow"`
	// VrouterStart is how long the guarded window waits after labelling the
	// node for vrouter to take the NIC over (vhost0 appears) before the
	// GuardWindow deadline starts; not there by then is reverted too.
	VrouterStart Duration `json:"vrouterStart"`
	// ProbeTargets must also answer during the guarded vrouter start:
	// "icmp:ADDR" or "tcp:ADDR:PORT" (a voter site, an upstream router).
	ProbeTargets []string `json:"probeTargets,omitempty"`
	// Interval is how often bring-up re-checks and converges without an event.
	Interval Duration `json:"interval"`
	// Profile is "production" (the default: TF's host requirements) or
	// "lab": preflight's memory and disk minimums lowered to what a test VM
	// has (docs/bringup.md), said loudly in status and on the console.
	Profile string `json:"profile,omitempty"`
}

// Bring-up profiles (bringUp.profile).
const (
	ProfileProduction = "production"
	ProfileLab        = "lab"
	// LabMinMemoryGiB and LabMinDiskGB are the lab profile's preflight
	// minimums: a 2-vCPU VM with 3 GiB runs the control plane (TF's own
	// containers need the production minimums).
	LabMinMemoryGiB = 2
	LabMinDiskGB    = 4
)

// Preflight sets the host checks of bring-up; zero values take the support
// matrix's (agent/kube/support-matrix.yaml) host minimums.
type Preflight struct {
	// Skip runs no checks (labs; never on a production host).
	Skip bool `json:"skip,omitempty"`
	// MinMemoryGiB, MinDiskGB (free under /var) and MinCPUs.
	MinMemoryGiB uint64 `json:"minMemoryGiB,omitempty"`
	MinDiskGB    uint64 `json:"minDiskGB,omitempty"`
	MinCPUs      int    `json:"minCPUs,omitempty"`
	// TFRelease selects the support-matrix row kubeadm and kubelet are checked against.
	TFRelease string `json:"tfRelease,omitempty"`
}

// Gossip configures the memberlist transport.
type Gossip struct {
	// BindAddress is the local IP gossip listens on (TCP and UDP).
	BindAddress string `json:"bindAddress"`
	// BindPort is the gossip port; 0 picks a free port (tests only).
	BindPort int `json:"bindPort"`
	// AdvertiseAddress is the IP peers reach this site at; empty means the
	// underlay address found by discovery, else the bind address.
	AdvertiseAddress string `json:"advertiseAddress,omitempty"`
	// AdvertisePort defaults to BindPort.
	AdvertisePort int `json:"advertisePort,omitempty"`
	// Seeds are host[:port] of any other sites; the port defaults to 7946.
	Seeds []string `json:"seeds,omitempty"`
	// KeyFile holds the base64 gossip encryption key (16, 24 or 32 bytes);
	// during a key change, several keys (one per line), the first primary.
	KeyFile string `json:"keyFile,omitempty"`
	// Key is the same key inline (base64; several separated by commas); use
	// either Key or KeyFile.
	Key string `json:"key,omitempty"`
	// Profile tunes memberlist timers: lan (default), wan, or local (tests).
	Profile string `json:"profile,omitempty"`
	// RejoinInterval is how often seeds and known peers that are not alive
	// are re-joined, so a healed partition merges again.
	RejoinInterval Duration `json:"rejoinInterval"`
}

// Allocator configures the endpoint voters serve raft and allocation RPC on;
// it binds the gossip bind address and advertises the gossip advertise
// address. Non-voters do not listen.
type Allocator struct {
	// BindPort defaults to 7947; 0 picks a free port (tests only).
	BindPort int `json:"bindPort"`
	// AdvertisePort defaults to BindPort.
	AdvertisePort int `json:"advertisePort,omitempty"`
	// RetryInterval is how often a site without an allocation retries.
	RetryInterval Duration `json:"retryInterval"`
	// RaftMultiplier scales the Raft heartbeat, election and lease timeouts
	// (1 = 1s/1s/500ms) for slow links or overloaded hosts, like Consul's
	// raft_multiplier. 1 to 10; it should be the same on every voter.
	RaftMultiplier int `json:"raftMultiplier"`
}

// Underlay configures discovery of the underlay interface and gateway.
type Underlay struct {
	// Interface is the NIC to discover on, or "auto" for every physical NIC.
	Interface string `json:"interface"`
	// Timeout bounds the DHCP exchange.
	Timeout Duration `json:"timeout"`
	// Disabled skips discovery (labs and tests); the advertise or bind
	// address is then used as the underlay address.
	Disabled bool `json:"disabled,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "30s"-style strings (and plain seconds as a number).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string like \"30s\", got %s", b)
		}
		*d = Duration(time.Duration(n * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a form like \"30s\" or \"2m\"", s)
	}
	*d = Duration(v)
	return nil
}

// Default returns the configuration used where no source sets a field.
func Default() Config {
	return Config{
		Gossip: Gossip{
			BindAddress:    "0.0.0.0",
			BindPort:       DefaultGossipPort,
			Profile:        "lan",
			RejoinInterval: Duration(15 * time.Second),
		},
		Allocator: Allocator{
			BindPort:       DefaultAllocatorPort,
			RetryInterval:  Duration(2 * time.Second),
			RaftMultiplier: 1,
		},
		Pools:          pools.DefaultPools(),
		StateDir:       DefaultStateDir,
		APISocket:      DefaultAPISocket,
		MetricsAddress: DefaultMetricsAddress,
		Underlay: Underlay{
			Interface: "auto",
			Timeout:   Duration(DefaultDiscoverTimeout),
		},
		BringUp: BringUp{
			Kubeconfig:   DefaultKubeconfig,
			Kubeadm:      "kubeadm",
			GuardWindow:  Duration(DefaultGuardWindow),
			VrouterStart: Duration(DefaultVrouterStart),
			Interval:     Duration(DefaultBringUpInterval),
		},
	}
}

// NeedsConfiguration reports whether no source named the site, in which case
// the agent waits for configuration instead of starting.
func (c Config) NeedsConfiguration() bool { return c.Site == "" }

// Validate checks the whole configuration and reports every problem at once,
// one line each, naming the field and the fix.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	switch {
	case c.Site == "":
		add("site", "empty; set the site name (tfsite.site= on the kernel command line, or site: in the config)")
	default:
		if err := sitename.Validate(c.Site); err != nil {
			add("site", "%v", err)
		}
	}
	g := c.Gossip
	if _, err := netip.ParseAddr(g.BindAddress); err != nil {
		add("gossip.bindAddress", "%q is not an IP address; use e.g. 0.0.0.0 or the underlay address", g.BindAddress)
	}
	if g.BindPort < 0 || g.BindPort > 65535 {
		add("gossip.bindPort", "%d is out of range; use 1-65535 (default %d)", g.BindPort, DefaultGossipPort)
	}
	if g.AdvertiseAddress != "" {
		if a, err := netip.ParseAddr(g.AdvertiseAddress); err != nil || a.IsUnspecified() {
			add("gossip.advertiseAddress", "%q is not a unicast IP address; set the address peers reach this site at, or leave it empty", g.AdvertiseAddress)
		}
	}
	if g.AdvertisePort < 0 || g.AdvertisePort > 65535 {
		add("gossip.advertisePort", "%d is out of range; use 1-65535 or 0 for the bind port", g.AdvertisePort)
	}
	switch g.Profile {
	case "lan", "wan", "local":
	default:
		add("gossip.profile", "%q is not a profile; use lan, wan or local", g.Profile)
	}
	if g.RejoinInterval <= 0 {
		add("gossip.rejoinInterval", "%s must be positive, e.g. \"15s\"", time.Duration(g.RejoinInterval))
	}
	a := c.Allocator
	if a.BindPort < 0 || a.BindPort > 65535 {
		add("allocator.bindPort", "%d is out of range; use 1-65535 (default %d)", a.BindPort, DefaultAllocatorPort)
	} else if a.BindPort != 0 && a.BindPort == g.BindPort {
		add("allocator.bindPort", "%d is also the gossip port; use another (default %d)", a.BindPort, DefaultAllocatorPort)
	}
	if a.AdvertisePort < 0 || a.AdvertisePort > 65535 {
		add("allocator.advertisePort", "%d is out of range; use 1-65535 or 0 for the bind port", a.AdvertisePort)
	}
	if a.RaftMultiplier < 1 || a.RaftMultiplier > 10 {
		add("allocator.raftMultiplier", "%d is out of range; use 1 (LAN) to 10 (slow links or overloaded hosts)", a.RaftMultiplier)
	}
	if a.RetryInterval <= 0 {
		add("allocator.retryInterval", "%s must be positive, e.g. \"2s\"", time.Duration(a.RetryInterval))
	}
	for i, s := range g.Seeds {
		if _, err := SeedAddress(s); err != nil {
			add(fmt.Sprintf("gossip.seeds[%d]", i), "%v", err)
		}
	}
	if g.Key != "" && g.KeyFile != "" {
		add("gossip.key", "both key and keyFile are set; keep one")
	} else if keys, err := c.GossipKeys(); err != nil {
		field := "gossip.key"
		if g.KeyFile != "" {
			field = "gossip.keyFile"
		}
		add(field, "%v", err)
	} else if keys == nil && !c.Insecure {
		add("gossip.key", "none configured: without a key anyone who reaches the fleet can join its gossip and ask its voters for allocations; write one key, the same on every site, into gossip.keyFile (head -c32 /dev/urandom | base64) or set gossip.key / tfsite.key=; for a lab that accepts this, set insecure: true (tfsite.insecure=on)")
	} else if !c.Insecure {
		for _, problem := range c.KeyExposure() {
			errs = append(errs, fmt.Errorf("%s (or, in a lab only, set insecure: true to be warned instead)", problem))
		}
	}
	if len(c.Voters) == 0 {
		add("voters", "empty; list the site names that commit allocations (the same list on every site), e.g. voters: [site-a]")
	}
	seen := map[string]bool{}
	for i, v := range c.Voters {
		if err := sitename.Validate(v); err != nil {
			add(fmt.Sprintf("voters[%d]", i), "%v", err)
		}
		if seen[v] {
			add(fmt.Sprintf("voters[%d]", i), "%q is listed twice; list each voter once", v)
		}
		seen[v] = true
	}
	if err := c.Pools.Validate(); err != nil {
		// alloc names the field (pools.xxx) in each line already.
		errs = append(errs, err)
	}
	if c.StateDir == "" || !strings.HasPrefix(c.StateDir, "/") {
		add("stateDir", "%q must be an absolute directory path (default %s)", c.StateDir, DefaultStateDir)
	}
	if c.APISocket == "" || !strings.HasPrefix(c.APISocket, "/") {
		add("apiSocket", "%q must be an absolute path (default %s)", c.APISocket, DefaultAPISocket)
	} else if len(c.APISocket) > 107 {
		add("apiSocket", "path is %d bytes; unix socket paths must be at most 107", len(c.APISocket))
	}
	if c.MetricsAddress != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddress); err != nil {
			add("metricsAddress", "%q is not host:port; use e.g. %s, or empty to disable metrics", c.MetricsAddress, DefaultMetricsAddress)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			add("metricsAddress", "port %q is out of range; use 0-65535", port)
		}
	}
	if c.ManagementInterface != "" && (len(c.ManagementInterface) > 15 || strings.ContainsAny(c.ManagementInterface, "/ \t")) {
		add("managementInterface", "%q is not an interface name (at most 15 bytes, no '/' or spaces)", c.ManagementInterface)
	}
	if c.Underlay.Interface == "" {
		add("underlay.interface", "empty; use \"auto\" or an interface name")
	} else if c.Underlay.Interface != "auto" && c.Underlay.Interface == c.ManagementInterface {
		add("underlay.interface", "%q is the management interface; pick another or \"auto\"", c.Underlay.Interface)
	}
	if c.Underlay.Timeout <= 0 && !c.Underlay.Disabled {
		add("underlay.timeout", "%s must be positive, e.g. \"30s\"", time.Duration(c.Underlay.Timeout))
	}
	errs = append(errs, c.BringUp.validate()...)
	errs = append(errs, c.Console.validate()...)
	return errors.Join(errs...)
}

// SeedAddress returns host:port for a seed given as host or host:port; the
// port defaults to DefaultGossipPort. It parses exactly as membership does.
func SeedAddress(s string) (string, error) { return hostport.Normalize(s, DefaultGossipPort) }

// GossipKeys returns the decoded gossip keyring, primary first, or nil when
// no key is configured (gossip then runs unencrypted, which the agent warns
// about). The key text (gossip.key or the key file) holds one or more base64
// keys separated by newlines, spaces or commas: the first encrypts what this
// site sends, every one is accepted from peers, so a fleet can change its key
// without a split (docs/allocation.md, "Rotate the gossip key").
func (c Config) GossipKeys() ([][]byte, error) {
	text := c.Gossip.Key
	if c.Gossip.KeyFile != "" {
		b, err := readlimit.File(c.Gossip.KeyFile, "key file", MaxKeyFile)
		if errors.Is(err, readlimit.ErrTooLarge) {
			return nil, fmt.Errorf("%w; a key file holds base64 keys, one per line", err)
		}
		if err != nil {
			return nil, fmt.Errorf("reading key file: %w; create it with: head -c32 /dev/urandom | base64 > %s", err, c.Gossip.KeyFile)
		}
		text = string(b)
	}
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(fields) == 0 {
		if c.Gossip.KeyFile != "" {
			return nil, fmt.Errorf("key file %s is empty; write a base64 key of 16, 24 or 32 bytes into it", c.Gossip.KeyFile)
		}
		return nil, nil
	}
	keys := make([][]byte, 0, len(fields))
	for i, f := range fields {
		name := "key"
		if len(fields) > 1 {
			name = fmt.Sprintf("key %d of %d", i+1, len(fields))
		}
		k, err := base64.StdEncoding.DecodeString(f)
		if err != nil {
			return nil, fmt.Errorf("%s is not base64; generate one with: head -c32 /dev/urandom | base64", name)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("%s is %d bytes; it must decode to 16, 24 or 32 bytes (head -c32 /dev/urandom | base64)", name, n)
		}
		for j, prev := range keys {
			if bytes.Equal(prev, k) {
				return nil, fmt.Errorf("%s repeats key %d; list each key once", name, j+1)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}
