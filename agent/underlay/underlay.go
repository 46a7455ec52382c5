// Package underlay finds the underlay network's gateway the way a careful
// DHCP client does and cross-checks it with the kernel.
//
// Discover reads the kernel's view (links, addresses, the default route per
// link) through netlink, runs one DHCPv4 exchange per interface over a raw
// socket (nclient4, so the interface may be unconfigured), decides the
// gateway per RFC 3442 (DecideGateway) and, only when Options.Apply is set,
// configures the lease through netlink. Without Apply nothing on the host
// changes.
//
// All kernel access (netlink, opening raw sockets, applying) happens on the
// calling goroutine, so a caller that locked its thread into a network
// namespace gets that namespace's view.
package underlay

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Gateway sources reported in Result.GatewaySource.
const (
	// SourceOption121 is a default route from DHCP option 121 (RFC 3442).
	SourceOption121 = "dhcp-option-121"
	// SourceOption3 is the first router of DHCP option 3 (no option 121).
	SourceOption3 = "dhcp-option-3"
	// SourceKernelRoute is the kernel's default route. Discover itself never
	// reports it (it reports what DHCP says and whether the kernel agrees);
	// it is reserved for callers that fall back to the kernel's view.
	SourceKernelRoute = "kernel-route"
)

// IfaceAuto asks Discover to pick the underlay interface itself.
const IfaceAuto = "auto"

// Sentinel errors callers branch on (errors.Is). Discover wraps them with
// the interface name and the cause.
var (
	// ErrInvalidOptions: Options failed Validate.
	ErrInvalidOptions = errors.New("invalid options")
	// ErrNoInterface: the named interface does not exist or cannot run
	// DHCP (no Ethernet address), or auto found no candidate.
	ErrNoInterface = errors.New("no usable interface")
	// ErrLinkDown: the interface is administratively down or has no carrier.
	ErrLinkDown = errors.New("link is down")
	// ErrNoResponse: no DHCP answer within Options.Timeout.
	ErrNoResponse = errors.New("no DHCP answer in time")
	// ErrTimeout is ErrNoResponse under the name some callers look for.
	ErrTimeout = ErrNoResponse
	// ErrNAK: a DHCP server refused the request (DHCPNAK).
	ErrNAK = errors.New("DHCP server sent NAK")
	// ErrBadLease: the ACK is malformed or unusable (no address, bad mask,
	// malformed option 121 or 3, gateway not a unicast address).
	ErrBadLease = errors.New("unusable DHCP lease")
	// ErrNoGateway: the lease has neither a router (option 3) nor a default
	// route in option 121 (when option 121 is present, option 3 is ignored).
	ErrNoGateway = errors.New("lease has no gateway")
	// ErrGatewayIsSelf: the gateway equals the leased address.
	ErrGatewayIsSelf = errors.New("gateway is the leased address itself")
	// ErrGatewayOffLink: the gateway is outside the lease's subnet and every
	// on-link classless route, so it cannot be reached.
	ErrGatewayOffLink = errors.New("gateway is not on-link")
	// ErrApply: configuring the lease through netlink failed.
	ErrApply = errors.New("applying the lease failed")
	// ErrUnsupported: Discover needs Linux (netlink, AF_PACKET).
	ErrUnsupported = errors.New("not supported on this platform")
)

// Options configures Discover. The zero value of Timeout and Retries means
// the default; see Default.
type Options struct {
	// Iface is an interface name, or "auto" to pick one (see Discover).
	Iface string
	// Timeout bounds the whole exchange on each interface (default 10s).
	// With auto the interfaces are tried concurrently, so it bounds the
	// whole discovery too.
	Timeout time.Duration
	// Retries is how many times each message (DISCOVER, REQUEST) is
	// retransmitted after the first send when no answer comes; 0 means the
	// default (3). The waits double and are sized so that both messages'
	// retries fit in Timeout (nclient4 WithTimeout/WithRetry).
	Retries int
	// Skip lists interfaces auto never picks (e.g. the management interface).
	Skip []string
	// Apply configures the lease (address, routes, MTU) through netlink.
	Apply bool
	// RequestIP, if set, asks for this address first as a rebooting client
	// does with its previous lease (RFC 2131 INIT-REBOOT: a REQUEST without
	// DISCOVER). An authoritative server NAKs an address that is wrong for
	// the network; Discover then returns ErrNAK instead of falling back, so
	// the operator learns the pinned address is wrong.
	RequestIP string
}

// Default returns the defaults: auto interface, 10s, 3 retransmissions.
func Default() Options {
	return Options{Iface: IfaceAuto, Timeout: 10 * time.Second, Retries: 3}
}

// withDefaults fills the zero Timeout and Retries.
func (o Options) withDefaults() Options {
	d := Default()
	if o.Timeout == 0 {
		o.Timeout = d.Timeout
	}
	if o.Retries == 0 {
		o.Retries = d.Retries
	}
	return o
}

// Validate reports every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	if strings.TrimSpace(o.Iface) == "" {
		errs = append(errs, fmt.Errorf("interface is empty: name one (e.g. eth0) or use %q", IfaceAuto))
	} else if len(o.Iface) > 15 || strings.ContainsAny(o.Iface, "/ \t") {
		errs = append(errs, fmt.Errorf("interface %q is not a valid Linux interface name (at most 15 bytes, no '/' or spaces)", o.Iface))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative: use a positive duration such as 10s", o.Timeout))
	} else if o.Timeout > 0 && o.Timeout < 50*time.Millisecond {
		errs = append(errs, fmt.Errorf("timeout %s is too short for a DHCP exchange: use at least 50ms", o.Timeout))
	}
	if o.Retries < 0 || o.Retries > 10 {
		errs = append(errs, fmt.Errorf("retries %d out of range: use 0 (default 3) to 10", o.Retries))
	}
	if o.RequestIP != "" {
		if _, err := parseIPv4(o.RequestIP); err != nil {
			errs = append(errs, fmt.Errorf("request IP: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, oneLine(err))
	}
	return nil
}

// Route is a route the lease asks for. Via is "" for an on-link route
// (RFC 3442 router 0.0.0.0): the destination is reached directly on the
// interface.
type Route struct {
	Dst string `json:"dst"`
	Via string `json:"via"`
}

// Result is what Discover found.
type Result struct {
	Interface string `json:"interface"`
	MAC       string `json:"mac"`
	// Address is the leased address in CIDR form (e.g. 192.0.2.10/24).
	Address       string `json:"address"`
	Gateway       string `json:"gateway"`
	GatewaySource string `json:"gateway_source"`
	// Routes are the routes the lease asks for: every option 121 route
	// when option 121 is present, else the default route via option 3.
	Routes       []Route  `json:"routes"`
	DNS          []string `json:"dns"`
	MTU          int      `json:"mtu"`
	LeaseSeconds int      `json:"lease_seconds"`
	Server       string   `json:"server"`
	// KernelDefaultRoute is the gateway of the kernel's default route on
	// this interface before Discover ran ("" if none, "on-link" for a
	// default route without a gateway).
	KernelDefaultRoute string `json:"kernel_default_route"`
	// Agrees reports whether Gateway equals KernelDefaultRoute.
	Agrees bool `json:"agrees"`
}

// oneLine joins a multi-line error (errors.Join) into one line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
