package underlay

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// LeaseRoute is one route of a lease; Via is the zero Addr for an on-link
// route.
type LeaseRoute struct {
	Dst netip.Prefix
	Via netip.Addr
}

// OnLink reports whether the route has no gateway.
func (r LeaseRoute) OnLink() bool { return !r.Via.IsValid() }

// Gateway is the outcome of DecideGateway.
type Gateway struct {
	// Address is the leased address with the lease's prefix length.
	Address netip.Prefix
	// Addr is the gateway: the default route's router.
	Addr netip.Addr
	// Source is SourceOption121 or SourceOption3.
	Source string
	// Routes are the routes to install: all option 121 routes, or the
	// default route via the option 3 router.
	Routes []LeaseRoute
}

// Lease is a decoded, validated DHCP ACK.
type Lease struct {
	Gateway
	DNS          []netip.Addr
	MTU          int // 0 when option 26 is absent or invalid
	LeaseSeconds int
	Server       netip.Addr
}

// DecideGateway decides the gateway of a DHCP ACK per RFC 3442, from the
// message alone (pure: no kernel access):
//
//   - the address is yiaddr with the option 1 mask (no option 1: /32);
//   - when option 121 (classless static routes) is present, option 3 is
//     ignored and the default route comes from option 121 only; a 121 with
//     no default route yields ErrNoGateway even when option 3 is present
//     (the message names the ignored router);
//   - otherwise the gateway is the first router of option 3;
//   - the gateway must differ from the leased address (ErrGatewayIsSelf) and
//     lie within an on-link prefix: the lease's subnet or an on-link (router
//     0.0.0.0) option 121 route, which is how /32 leases of public clouds
//     reach their gateway (ErrGatewayOffLink otherwise).
func DecideGateway(m *dhcpv4.DHCPv4) (Gateway, error) {
	var g Gateway
	if m == nil {
		return g, fmt.Errorf("%w: no message", ErrBadLease)
	}
	addr, ok := netip.AddrFromSlice(m.YourIPAddr.To4())
	if !ok || !isUnicast(addr) {
		return g, fmt.Errorf("%w: leased address (yiaddr) %v is not a unicast IPv4 address", ErrBadLease, m.YourIPAddr)
	}
	bits := 32
	if m.Options.Has(dhcpv4.OptionSubnetMask) {
		raw := m.Options.Get(dhcpv4.OptionSubnetMask)
		ones, size := net.IPMask(raw).Size()
		if len(raw) != 4 || size != 32 {
			return g, fmt.Errorf("%w: subnet mask (option 1) %x is not a contiguous IPv4 mask", ErrBadLease, raw)
		}
		bits = ones
	}
	g.Address = netip.PrefixFrom(addr, bits)
	onLink := []netip.Prefix{g.Address.Masked()}

	if m.Options.Has(dhcpv4.OptionClasslessStaticRoute) {
		var rs dhcpv4.Routes
		if err := rs.FromBytes(m.Options.Get(dhcpv4.OptionClasslessStaticRoute)); err != nil {
			return g, fmt.Errorf("%w: classless static routes (option 121) are malformed: %v", ErrBadLease, err)
		}
		g.Source = SourceOption121
		haveDefault := false
		for _, r := range rs {
			lr, err := leaseRoute(r)
			if err != nil {
				return g, err
			}
			g.Routes = append(g.Routes, lr)
			if lr.OnLink() {
				onLink = append(onLink, lr.Dst)
			}
			if lr.Dst.Bits() == 0 && !haveDefault {
				haveDefault = true
				if lr.OnLink() {
					return g, fmt.Errorf("%w: the option 121 default route is on-link (router 0.0.0.0), so there is no gateway address", ErrNoGateway)
				}
				g.Addr = lr.Via
			}
		}
		if !haveDefault {
			if routers, _ := ipv4List(m.Options.Get(dhcpv4.OptionRouter)); len(routers) > 0 {
				return g, fmt.Errorf("%w: option 121 (classless static routes) has no default route, and per RFC 3442 the option 3 router %s is ignored when option 121 is present", ErrNoGateway, routers[0])
			}
			return g, fmt.Errorf("%w: option 121 (classless static routes) has no default route and there is no router (option 3)", ErrNoGateway)
		}
	} else {
		if !m.Options.Has(dhcpv4.OptionRouter) {
			return g, fmt.Errorf("%w: neither a router (option 3) nor classless static routes (option 121)", ErrNoGateway)
		}
		routers, err := ipv4List(m.Options.Get(dhcpv4.OptionRouter))
		if err != nil {
			return g, fmt.Errorf("%w: router option 3: %v", ErrBadLease, err)
		}
		if len(routers) == 0 {
			return g, fmt.Errorf("%w: router option 3 is empty and there are no classless static routes (option 121)", ErrNoGateway)
		}
		g.Source = SourceOption3
		g.Addr = routers[0]
		g.Routes = []LeaseRoute{{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Via: g.Addr}}
	}

	if !isUnicast(g.Addr) {
		return g, fmt.Errorf("%w: gateway %s (from %s) is not a unicast address", ErrBadLease, g.Addr, g.Source)
	}
	if g.Addr == addr {
		return g, fmt.Errorf("%w: gateway %s (from %s) equals the leased address", ErrGatewayIsSelf, g.Addr, g.Source)
	}
	for _, p := range onLink {
		if p.Contains(g.Addr) {
			return g, nil
		}
	}
	return g, fmt.Errorf("%w: gateway %s (from %s) is outside the lease's subnet %s and every on-link classless route", ErrGatewayOffLink, g.Addr, g.Source, g.Address.Masked())
}

// ParseLease decodes an ACK: DecideGateway plus DNS (6), MTU (26), lease
// time (51) and server identifier (54).
func ParseLease(m *dhcpv4.DHCPv4) (*Lease, error) {
	g, err := DecideGateway(m)
	if err != nil {
		return nil, err
	}
	l := &Lease{Gateway: g}
	dns, _ := ipv4List(m.Options.Get(dhcpv4.OptionDomainNameServer))
	for _, a := range dns {
		if isUnicast(a) {
			l.DNS = append(l.DNS, a)
		}
	}
	// RFC 2132 9.9: the MTU minimum is 68; ignore nonsense rather than fail.
	if raw := m.Options.Get(dhcpv4.OptionInterfaceMTU); len(raw) == 2 {
		if mtu := int(binary.BigEndian.Uint16(raw)); mtu >= 68 {
			l.MTU = mtu
		}
	}
	l.LeaseSeconds = int(m.IPAddressLeaseTime(0) / time.Second)
	if s, ok := netip.AddrFromSlice(m.ServerIdentifier().To4()); ok {
		l.Server = s
	} else if s, ok := netip.AddrFromSlice(m.ServerIPAddr.To4()); ok && !s.IsUnspecified() {
		l.Server = s
	}
	return l, nil
}

func leaseRoute(r *dhcpv4.Route) (LeaseRoute, error) {
	var lr LeaseRoute
	dst, ok := netip.AddrFromSlice(r.Dest.IP.To4())
	ones, _ := r.Dest.Mask.Size()
	if !ok {
		return lr, fmt.Errorf("%w: option 121 route %v has no IPv4 destination", ErrBadLease, r.Dest)
	}
	lr.Dst = netip.PrefixFrom(dst, ones).Masked()
	via, ok := netip.AddrFromSlice(r.Router.To4())
	if !ok {
		return lr, fmt.Errorf("%w: option 121 route to %s has no IPv4 router", ErrBadLease, lr.Dst)
	}
	if !via.IsUnspecified() {
		lr.Via = via
	}
	return lr, nil
}

// ipv4List decodes a list of IPv4 addresses (options 3, 6).
func ipv4List(b []byte) ([]netip.Addr, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("length %d is not a multiple of 4", len(b))
	}
	out := make([]netip.Addr, 0, len(b)/4)
	for i := 0; i+4 <= len(b); i += 4 {
		out = append(out, netip.AddrFrom4([4]byte(b[i:i+4])))
	}
	return out, nil
}

func isUnicast(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func parseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || !isUnicast(a) {
		return netip.Addr{}, fmt.Errorf("%q is not a unicast IPv4 address (e.g. 192.0.2.10)", s)
	}
	return a, nil
}

// result converts a lease into the Result fields it determines.
func (l *Lease) result() Result {
	r := Result{
		Address:       l.Address.String(),
		Gateway:       l.Addr.String(),
		GatewaySource: l.Source,
		Routes:        make([]Route, 0, len(l.Routes)),
		DNS:           make([]string, 0, len(l.DNS)),
		MTU:           l.MTU,
		LeaseSeconds:  l.LeaseSeconds,
	}
	for _, rt := range l.Routes {
		via := ""
		if !rt.OnLink() {
			via = rt.Via.String()
		}
		r.Routes = append(r.Routes, Route{Dst: rt.Dst.String(), Via: via})
	}
	for _, d := range l.DNS {
		r.DNS = append(r.DNS, d.String())
	}
	if l.Server.IsValid() {
		r.Server = l.Server.String()
	}
	return r
}

// prefixNet converts a prefix to the *net.IPNet netlink wants.
func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
