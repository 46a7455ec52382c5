package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/bringup"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/peering"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/readlimit"
)

func init() {
	register(newRenderCmd)
	register(newPeeringCmd)
}

// Exit codes of `tfsite render` and `tfsite peering`.
const (
	exitRenderWrite = 1
	exitRenderUsage = 2
)

// maxInputFile bounds --config and --peers-file (docs/bringup.md).
const maxInputFile = 1 << 20

// siteFlags are the site parameters given on the command line; they override --config.
type siteFlags struct {
	config, socket                               string
	site, pod, service, fabric, address, gateway string
	iface, registry, tag                         string
	asn                                          uint32
}

func (f *siteFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "site parameters file (YAML; see docs/bringup.md)")
	fl.StringVar(&f.socket, "socket", "", "take the site parameters from a running agent's API socket (e.g. "+config.DefaultAPISocket+") instead of --config")
	fl.StringVar(&f.site, "site", "", "site name (overrides the file)")
	fl.Uint32Var(&f.asn, "asn", 0, "site BGP ASN")
	fl.StringVar(&f.pod, "pod", "", "pod prefix, e.g. 10.40.0.0/16")
	fl.StringVar(&f.service, "service", "", "service prefix")
	fl.StringVar(&f.fabric, "fabric", "", "IP fabric prefix")
	fl.StringVar(&f.address, "address", "", "this node's underlay address")
	fl.StringVar(&f.gateway, "gateway", "", "the discovered underlay gateway (never the master's address)")
	fl.StringVar(&f.iface, "interface", "", "underlay NIC (PHYSICAL_INTERFACE)")
	fl.StringVar(&f.registry, "registry", "", "TF image registry (default "+kube.DefaultTFRegistry+")")
	fl.StringVar(&f.tag, "tag", "", "TF image tag (default "+kube.DefaultTFTag+")")
}

// params loads --config (if any), applies the flags that were set, fills
// defaults and validates.
func (f *siteFlags) params(cmd *cobra.Command) (kube.SiteParams, error) {
	var p kube.SiteParams
	if f.config != "" && f.socket != "" {
		return p, errors.New("--config and --socket: give one source of site parameters, not both")
	}
	if f.socket != "" {
		st, err := api.NewClient(f.socket).Status(cmd.Context())
		if err != nil {
			return p, err
		}
		if p, err = siteFromStatus(st); err != nil {
			return p, err
		}
	}
	if f.config != "" {
		data, err := readInputFile(f.config, "--config file")
		if err != nil {
			return p, err
		}
		if err := yamlStrict(data, &p); err != nil {
			return p, fmt.Errorf("%s: %w", f.config, err)
		}
	}
	var errs []error
	set := func(name string, apply func() error) {
		if cmd.Flags().Changed(name) {
			if err := apply(); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", name, err))
			}
		}
	}
	prefix := func(s string, dst *netip.Prefix) func() error {
		return func() (err error) { *dst, err = netip.ParsePrefix(s); return err }
	}
	addr := func(s string, dst *netip.Addr) func() error {
		return func() (err error) { *dst, err = netip.ParseAddr(s); return err }
	}
	set("site", func() error { p.Site = f.site; return nil })
	set("asn", func() error { p.ASN = f.asn; return nil })
	set("pod", prefix(f.pod, &p.Pod))
	set("service", prefix(f.service, &p.Service))
	set("fabric", prefix(f.fabric, &p.Fabric))
	set("address", addr(f.address, &p.AdvertiseAddress))
	set("gateway", addr(f.gateway, &p.Gateway))
	set("interface", func() error { p.PhysicalInterface = f.iface; return nil })
	set("registry", func() error { p.TFRegistry = f.registry; return nil })
	set("tag", func() error { p.TFTag = f.tag; return nil })
	if err := errors.Join(errs...); err != nil {
		return p, err
	}
	p = p.WithDefaults()
	return p, p.Validate()
}

// siteFromStatus takes the site parameters from an agent's status
// (bringup.SiteFromStatus). Only the allocation is required: flags may fill
// what discovery did not find, and without a discovered underlay the site's
// advertised gossip address stands in for the node address.
func siteFromStatus(st api.Status) (kube.SiteParams, error) {
	p, err := bringup.SiteFromStatus(st)
	if errors.Is(err, peering.ErrNotAllocated) {
		return p, err
	}
	if !p.AdvertiseAddress.IsValid() {
		if ap, err := netip.ParseAddrPort(st.Gossip); err == nil {
			p.AdvertiseAddress = ap.Addr()
		}
	}
	return p, nil
}

// yamlStrict decodes site parameters exactly as kube.ParseSiteParams does,
// without defaulting (flags still apply afterwards).
func yamlStrict(data []byte, p *kube.SiteParams) error {
	parsed, err := kube.DecodeSiteParams(data)
	if err != nil {
		return err
	}
	*p = parsed
	return nil
}

func newRenderCmd() *cobra.Command {
	var f siteFlags
	var out string
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write the site's kubeadm.yaml and Tungsten Fabric manifest (tf.yaml) without touching the host",
		Long: `Render the site's bring-up configuration from its allocation and underlay:

  kubeadm.yaml  InitConfiguration + ClusterConfiguration (kubeadm.k8s.io/v1beta4):
                clusterName = site, podSubnet/serviceSubnet = the allocation,
                advertiseAddress = the underlay address
  tf.yaml       TF's manifest (v1, apps/v1, rbac.authorization.k8s.io/v1):
                env (VROUTER_GATEWAY = underlay gateway, PHYSICAL_INTERFACE,
                CONTROLLER_NODES, BGP_ASN, KUBERNETES_POD_SUBNETS) and
                kube-manager-config (pod, service and IP-fabric subnets, API server)

The input is a small YAML file (--config; keys site, asn, pod, service, fabric,
address, gateway, interface, and optional controllerNodes, nodeName,
apiServerPort, criSocket, kubernetesVersion, bootstrapToken, tfRegistry, tfTag;
see docs/bringup.md), or a running agent (--socket: the site's allocation and
the underlay interface, address and gateway discovery found), and/or the flags
below, which override either. --config is at most 1 MiB. The two files are
written as a set (mode 0600): both temporary files are written and fsynced
before either is renamed, so a failure (a full disk) leaves both old files as
they were. Nothing else on the host changes.

Examples:
  tfsite render --config site.yaml --out /tmp/alpha
  tfsite render --site alpha --asn 64601 --pod 10.40.0.0/16 --service 10.41.0.0/16 \
      --fabric 10.42.0.0/16 --address 192.168.50.10 --gateway 192.168.50.1 \
      --interface eth0 --out /tmp/alpha
  tfsite render --socket /run/tfsite/api.sock --out /tmp/alpha
  kubeadm init --dry-run --config /tmp/alpha/kubeadm.yaml

Exit codes:
  0  both files written
  1  writing failed
  2  usage: missing or invalid parameters (every problem is listed)
  3  --socket: the agent is not reachable
  6  --socket: the site holds no allocation yet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return withCode(exitRenderUsage, errors.New("--out: set the output directory"))
			}
			p, err := f.params(cmd)
			if err != nil {
				return agentParamsCode(err)
			}
			files, err := tf.WriteBundle(out, p)
			if err != nil {
				return withCode(exitRenderWrite, err)
			}
			for _, file := range files {
				fmt.Fprintln(cmd.OutOrStdout(), file)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&out, "out", "", "output directory (created if missing)")
	return cmd
}

func newPeeringCmd() *cobra.Command {
	var f siteFlags
	var format, peersFile, routerID, out string
	var specs []string
	var noInstall bool
	cmd := &cobra.Command{
		Use:   "peering",
		Short: "Render BIRD 2 or FRR configuration peering this site with the other sites",
		Long: `Render, for a router outside TF (or a BGP speaker standing in for TF's control
node), the same peering the agent registers in TF's config API: one eBGP session
per other site, announcing this site's pod prefix and importing the others'.

The local side comes from the site parameters (--config and/or --site, --asn,
--pod, --address; the router id defaults to --address). Peers come from
--peer (repeatable) and/or --peers-file (YAML: peers: [{name, address, asn,
accept: [prefix, ...]}]; at most 1 MiB, like --config). A peer with this
site's own ASN, address or router id is refused. Output goes to stdout or
--out (written atomically).

With --socket, everything comes from the running agent: the local side from
its status (site, allocated ASN, pod prefix, advertised gossip address as
session source and router id; --address and --router-id override), and the
peers from GET /v1/bgp-peers, the list TF's peering is built from: one per
other site of the committed allocation table, at its underlay address, with
its committed ASN, accepting only its pod prefix (departed sites stay until
released); --peer and --peers-file add to them. Re-render when the fleet
changes.

Examples:
  tfsite peering --format bird --config site.yaml \
      --peer name=beta,address=10.0.2.10,asn=64602,accept=10.50.0.0/16 > bird.conf
  bird -p -c bird.conf
  tfsite peering --format frr --config site.yaml --peers-file peers.yaml --out /etc/frr/frr.conf
  tfsite peering --format bird --socket /run/tfsite/api.sock --out /etc/bird/bird.conf

Exit codes:
  0  configuration rendered
  1  writing --out failed
  2  usage: bad flag, parameter or peer
  3  --socket: the agent is not reachable
  6  --socket: the site holds no allocation yet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var local peering.Local
			var peers []peering.Peer
			if f.socket != "" {
				var err error
				if local, peers, err = f.fromAgent(cmd); err != nil {
					return agentParamsCode(err)
				}
			} else {
				p, err := f.localParams(cmd)
				if err != nil {
					return withCode(exitRenderUsage, err)
				}
				local = peering.Local{Site: p.Site, ASN: p.ASN, RouterID: p.AdvertiseAddress, Address: p.AdvertiseAddress,
					Announce: []netip.Prefix{p.Pod}}
			}
			local.InstallRoutes = !noInstall
			extra := peering.Extra{PeersFile: peersFile, Specs: specs, RouterID: routerID}
			if peersFile != "" {
				data, err := readInputFile(peersFile, "--peers-file")
				if err != nil {
					return withCode(exitRenderUsage, err)
				}
				extra.PeersData = data
			}
			local, peers, err := extra.Add(local, peers)
			if err != nil {
				return withCode(exitRenderUsage, err)
			}
			conf, err := peering.Render(format, local, peers)
			if err != nil {
				return withCode(exitRenderUsage, err)
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(conf)
				return err
			}
			return withCode(exitRenderWrite, atomicfile.Write(out, conf, 0o644))
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "bird", "bird (BIRD 2) or frr")
	fl.StringArrayVar(&specs, "peer", nil, "peer as name=NAME,address=IP,asn=N[,accept=PREFIX[;PREFIX]] (repeatable)")
	fl.StringVar(&peersFile, "peers-file", "", "YAML file listing peers")
	fl.StringVar(&routerID, "router-id", "", "BGP router id (default: --address)")
	fl.BoolVar(&noInstall, "no-install-routes", false, "BIRD: do not export learned routes to the kernel")
	fl.StringVar(&out, "out", "", "write to this file instead of stdout")
	return cmd
}

// fromAgent reads the local side and the peers from the agent at --socket;
// of the site flags only --address may override (the rest is the agent's).
func (f *siteFlags) fromAgent(cmd *cobra.Command) (peering.Local, []peering.Peer, error) {
	var bad []string
	for _, name := range []string{"config", "site", "asn", "pod", "service", "fabric", "gateway", "interface", "registry", "tag"} {
		if cmd.Flags().Changed(name) {
			bad = append(bad, "--"+name)
		}
	}
	if len(bad) > 0 {
		return peering.Local{}, nil, fmt.Errorf("--socket takes the site from the agent: drop %s", strings.Join(bad, ", "))
	}
	local, peers, err := peeringFromAgent(cmd, f.socket)
	if err != nil {
		return local, nil, err
	}
	if cmd.Flags().Changed("address") {
		if local.Address, err = netip.ParseAddr(f.address); err != nil {
			return local, nil, fmt.Errorf("--address: %w", err)
		}
		local.RouterID = local.Address
	}
	return local, peers, nil
}

// peeringFromAgent asks the agent at socket for its status and BGP peers (the
// committed table, as TF's peering uses) and turns them into the peering to
// render (peering.FromAgent). Any command holding an agent socket can render
// with it: peering.Render(format, local, peers).
func peeringFromAgent(cmd *cobra.Command, socket string) (peering.Local, []peering.Peer, error) {
	ctx := cmd.Context()
	c := api.NewClient(socket)
	st, err := c.Status(ctx)
	if err != nil {
		return peering.Local{}, nil, err
	}
	if st.Allocation == nil {
		return peering.FromAgent(st, nil) // ErrNotAllocated, naming the phase
	}
	ps, err := c.BGPPeers(ctx)
	if err != nil {
		return peering.Local{}, nil, err
	}
	return peering.FromAgent(st, ps)
}

// agentParamsCode maps errors of reading site parameters to exit codes: the
// agent unreachable 3, no allocation yet 6, anything else usage (2).
func agentParamsCode(err error) error {
	switch {
	case errors.Is(err, api.ErrAgentDown):
		return withCode(exitAgentDown, err)
	case errors.Is(err, peering.ErrNotAllocated):
		return withCode(exitNotAllocated, err)
	}
	return withCode(exitRenderUsage, err)
}

// localParams needs only the fields peering uses: site, asn, pod, address.
func (f *siteFlags) localParams(cmd *cobra.Command) (kube.SiteParams, error) {
	p, err := f.params(cmd)
	if err == nil {
		return p, nil
	}
	// Full validation wants gateway/interface/service/fabric too; peering does not.
	var errs []error
	if p.Site == "" {
		errs = append(errs, errors.New("site: missing (--site or config)"))
	}
	if p.ASN == 0 {
		errs = append(errs, errors.New("asn: missing (--asn or config)"))
	}
	if !p.Pod.IsValid() {
		errs = append(errs, errors.New("pod: missing (--pod or config)"))
	}
	if !p.AdvertiseAddress.IsValid() {
		errs = append(errs, errors.New("address: missing (--address or config)"))
	}
	if len(errs) > 0 {
		return p, errors.Join(errs...)
	}
	return p, nil
}

// readInputFile reads a file named by a flag, at most maxInputFile bytes.
func readInputFile(path, what string) ([]byte, error) {
	data, err := readlimit.File(path, what, maxInputFile)
	if err != nil && !errors.Is(err, readlimit.ErrTooLarge) {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return data, err
}
