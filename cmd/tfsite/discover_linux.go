package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent/underlay"
)

func init() { register(newDiscoverCmd) }

// Exit codes of `tfsite discover` (documented in its --help and docs/discover.md).
const (
	exitDiscoverUsage      = 2
	exitDiscoverInterface  = 3
	exitDiscoverNoAnswer   = 4
	exitDiscoverNAK        = 5
	exitDiscoverBadLease   = 6
	exitDiscoverApplyFail  = 7
	exitDiscoverOtherError = 1
)

type discoverFlags struct {
	iface, requestIP string
	skip             []string
	apply, json      bool
	debug            bool
}

func newDiscoverCmd() *cobra.Command {
	var f discoverFlags
	def := underlay.Default()
	opts := def
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Find the underlay gateway by DHCP (RFC 3442) and check it against the kernel's routes",
		Long: `Find the underlay network's gateway the way a careful DHCP client does, and
cross-check it with the kernel's default route.

discover reads links, addresses and routes through netlink, runs one DHCPv4
exchange over a raw socket (it works on an unconfigured interface) asking for
options 1, 3, 6, 26, 51, 54 and 121, and chooses the gateway per RFC 3442: when
option 121 (classless static routes) is present, option 3 is ignored and the
default route comes from option 121; otherwise the first router of option 3.
/32 leases reaching their gateway through an on-link classless route are valid.

Without --apply nothing on the host changes. With --apply the lease (address,
routes including classless ones, MTU from option 26) is configured through
netlink, for images that run no other DHCP client; leases are not renewed.

--iface auto skips loopback, --skip interfaces, down links, bridges, tunnels,
dummies and Docker/CNI/Kubernetes/Tungsten Fabric devices (vhost*, pkt*, tap*,
vif*, veth*, docker*, cni*, flannel*, ...), tries the rest concurrently and picks
the first, in this order, that yields a usable lease: links holding the
kernel's default route, then the others, each group sorted by name.

Needs root (raw sockets, netlink). See docs/discover.md.

Examples:
  sudo tfsite discover --iface auto
  sudo tfsite discover --iface eth0 --json
  sudo tfsite discover --iface auto --skip eth1 --timeout 5s --apply

Exit codes:
  0  a usable lease was found (and applied with --apply)
  1  other failure (e.g. not root, cancelled)
  2  usage: bad flag or value
  3  interface missing, down or without an Ethernet address; auto found no candidate
  4  no DHCP answer within --timeout
  5  the DHCP server refused the request (NAK)
  6  unusable lease: neither a router nor a classless default route, gateway
     equal to the leased address, gateway outside every on-link prefix, or
     malformed options
  7  --apply failed to configure the lease
With auto and several interfaces failing, the code is the first that applies
in the order 5, 6, 4, 3. Errors are one line on stderr naming the interface.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return withCode(exitDiscoverUsage, fmt.Errorf("discover takes no arguments, got %q: name the interface with --iface", args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Iface, opts.Skip, opts.Apply, opts.RequestIP = f.iface, f.skip, f.apply, f.requestIP
			return runDiscover(cmd, opts, f)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return withCode(exitDiscoverUsage, fmt.Errorf("discover: %w (see tfsite discover --help)", err))
	})
	fl := cmd.Flags()
	fl.StringVar(&f.iface, "iface", def.Iface, `interface to run DHCP on, or "auto" to pick the underlay`)
	fl.DurationVar(&opts.Timeout, "timeout", def.Timeout, "bound on the whole DHCP exchange")
	fl.IntVar(&opts.Retries, "retries", def.Retries, "retransmissions per DHCP message (waits double and fit in --timeout)")
	fl.StringSliceVar(&f.skip, "skip", nil, "interfaces auto never picks, e.g. the management interface (repeatable, comma-separated)")
	fl.BoolVar(&f.apply, "apply", false, "configure the lease (address, routes, MTU) through netlink")
	fl.BoolVar(&f.json, "json", false, "print one JSON object instead of text")
	fl.StringVar(&f.requestIP, "request-ip", "", "ask for this address first, as a rebooting client does (INIT-REBOOT); a NAK exits 5")
	fl.BoolVar(&f.debug, "debug", false, "log the DHCP exchange to stderr")
	return cmd
}

func runDiscover(cmd *cobra.Command, opts underlay.Options, f discoverFlags) error {
	// A one-shot command that allocates a few hundred KB: a GC cycle during
	// the exchange costs more than it frees. The memory limit keeps the heap
	// bounded should that ever change.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(256 << 20)
	log := slog.New(slog.DiscardHandler)
	if f.debug {
		log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	res, err := underlay.Discover(cmd.Context(), opts, log)
	if err != nil {
		return withCode(discoverExitCode(err), errors.New("discover "+strings.ReplaceAll(err.Error(), "\n", "; ")))
	}
	if f.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		return enc.Encode(res)
	}
	printResult(cmd.OutOrStdout(), res, opts.Apply)
	return nil
}

// discoverExitCode maps Discover's error to the documented exit code.
func discoverExitCode(err error) int {
	switch {
	case errors.Is(err, underlay.ErrApply):
		return exitDiscoverApplyFail
	case errors.Is(err, underlay.ErrInvalidOptions):
		return exitDiscoverUsage
	case errors.Is(err, underlay.ErrNAK):
		return exitDiscoverNAK
	case errors.Is(err, underlay.ErrNoGateway), errors.Is(err, underlay.ErrGatewayIsSelf),
		errors.Is(err, underlay.ErrGatewayOffLink), errors.Is(err, underlay.ErrBadLease):
		return exitDiscoverBadLease
	case errors.Is(err, underlay.ErrNoResponse):
		return exitDiscoverNoAnswer
	case errors.Is(err, underlay.ErrNoInterface), errors.Is(err, underlay.ErrLinkDown):
		return exitDiscoverInterface
	}
	return exitDiscoverOtherError
}

func printResult(w io.Writer, r *underlay.Result, applied bool) {
	kernel := "none (no default route on " + r.Interface + ")"
	if r.KernelDefaultRoute != "" {
		kernel = r.KernelDefaultRoute
	}
	agree := "DISAGREES with DHCP"
	if r.Agrees {
		agree = "agrees with DHCP"
	}
	routes := make([]string, 0, len(r.Routes))
	for _, rt := range r.Routes {
		if rt.Via == "" {
			routes = append(routes, rt.Dst+" on-link")
		} else {
			routes = append(routes, rt.Dst+" via "+rt.Via)
		}
	}
	mtu := "not set"
	if r.MTU > 0 {
		mtu = fmt.Sprint(r.MTU)
	}
	dns := strings.Join(r.DNS, ", ")
	if dns == "" {
		dns = "none"
	}
	apply := "no (nothing changed; --apply configures the lease)"
	if applied {
		apply = "yes (address, routes and MTU configured)"
	}
	fmt.Fprintf(w, "interface       %s (%s)\n", r.Interface, r.MAC)
	fmt.Fprintf(w, "address         %s\n", r.Address)
	fmt.Fprintf(w, "gateway         %s (from %s)\n", r.Gateway, r.GatewaySource)
	fmt.Fprintf(w, "kernel default  %s: %s\n", kernel, agree)
	fmt.Fprintf(w, "routes          %s\n", strings.Join(routes, "; "))
	fmt.Fprintf(w, "dns             %s\n", dns)
	fmt.Fprintf(w, "mtu             %s\n", mtu)
	fmt.Fprintf(w, "lease           %ds from server %s\n", r.LeaseSeconds, r.Server)
	fmt.Fprintf(w, "applied         %s\n", apply)
}
