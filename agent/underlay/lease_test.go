package underlay

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// ack builds an ACK for 192.0.2.10 with the given options.
func ack(t testing.TB, yiaddr string, opts ...dhcpv4.Option) *dhcpv4.DHCPv4 {
	t.Helper()
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(net.ParseIP(yiaddr))}
	for _, o := range opts {
		mods = append(mods, dhcpv4.WithOption(o))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mask(bits int) dhcpv4.Option { return dhcpv4.OptSubnetMask(net.CIDRMask(bits, 32)) }

func routers(ips ...string) dhcpv4.Option {
	var out []net.IP
	for _, s := range ips {
		out = append(out, net.ParseIP(s).To4())
	}
	return dhcpv4.OptRouter(out...)
}

// classless builds option 121 from "dst/len via" pairs.
func classless(pairs ...string) dhcpv4.Option {
	var rs []*dhcpv4.Route
	for i := 0; i+1 < len(pairs); i += 2 {
		_, n, err := net.ParseCIDR(pairs[i])
		if err != nil {
			panic(err)
		}
		rs = append(rs, &dhcpv4.Route{Dest: n, Router: net.ParseIP(pairs[i+1]).To4()})
	}
	return dhcpv4.OptClasslessStaticRoute(rs...)
}

func TestDecideGateway(t *testing.T) {
	for _, tc := range []struct {
		name       string
		yiaddr     string
		opts       []dhcpv4.Option
		wantGW     string
		wantSource string
		wantAddr   string
		wantRoutes string // "dst via" joined by ","
		wantErr    error
		errHas     string
	}{
		{name: "option 3 only", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), routers("192.0.2.1", "192.0.2.2")},
			wantGW: "192.0.2.1", wantSource: SourceOption3, wantAddr: "192.0.2.10/24", wantRoutes: "0.0.0.0/0 192.0.2.1"},
		{name: "121 default wins over 3", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), routers("192.0.2.254"),
			classless("198.51.100.0/24", "192.0.2.2", "0.0.0.0/0", "192.0.2.1")},
			wantGW: "192.0.2.1", wantSource: SourceOption121, wantAddr: "192.0.2.10/24", wantRoutes: "198.51.100.0/24 192.0.2.2,0.0.0.0/0 192.0.2.1"},
		{name: "121 without default ignores 3", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), routers("192.0.2.254"),
			classless("198.51.100.0/24", "192.0.2.2")},
			wantErr: ErrNoGateway, errHas: "router 192.0.2.254 is ignored"},
		{name: "121 without default and no 3", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), classless("198.51.100.0/24", "192.0.2.2")},
			wantErr: ErrNoGateway, errHas: "no router (option 3)"},
		{name: "empty 121 ignores 3", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), routers("192.0.2.1"),
			{Code: dhcpv4.OptionClasslessStaticRoute, Value: dhcpv4.Routes{}}},
			wantErr: ErrNoGateway, errHas: "192.0.2.1 is ignored"},
		{name: "121 on-link default", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), classless("0.0.0.0/0", "0.0.0.0")},
			wantErr: ErrNoGateway, errHas: "on-link"},
		{name: "/32 with on-link route to gateway", yiaddr: "10.0.0.50", opts: []dhcpv4.Option{mask(32), routers("10.0.0.1"),
			classless("10.0.0.1/32", "0.0.0.0", "0.0.0.0/0", "10.0.0.1")},
			wantGW: "10.0.0.1", wantSource: SourceOption121, wantAddr: "10.0.0.50/32", wantRoutes: "10.0.0.1/32 ,0.0.0.0/0 10.0.0.1"},
		{name: "/32 with option 3 only is off-link", yiaddr: "10.0.0.50", opts: []dhcpv4.Option{mask(32), routers("10.0.0.1")},
			wantErr: ErrGatewayOffLink, errHas: "10.0.0.1"},
		{name: "no mask means /32", yiaddr: "10.0.0.50", opts: []dhcpv4.Option{routers("10.0.0.1")},
			wantErr: ErrGatewayOffLink},
		{name: "gateway is self", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), routers("192.0.2.10")},
			wantErr: ErrGatewayIsSelf},
		{name: "gateway outside subnet", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), routers("198.51.100.1")},
			wantErr: ErrGatewayOffLink, errHas: "192.0.2.0/24"},
		{name: "121 gateway outside subnet", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), classless("0.0.0.0/0", "203.0.113.1")},
			wantErr: ErrGatewayOffLink},
		{name: "no router at all", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24)},
			wantErr: ErrNoGateway, errHas: "neither"},
		{name: "empty router option", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(24), {Code: dhcpv4.OptionRouter, Value: dhcpv4.IPs{}}},
			wantErr: ErrNoGateway},
		{name: "no yiaddr", yiaddr: "0.0.0.0", opts: []dhcpv4.Option{mask(24), routers("192.0.2.1")}, wantErr: ErrBadLease},
		{name: "non-contiguous mask", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{
			dhcpv4.OptSubnetMask(net.IPMask{255, 0, 255, 0}), routers("192.0.2.1")}, wantErr: ErrBadLease},
		{name: "broadcast gateway", yiaddr: "192.0.2.10", opts: []dhcpv4.Option{mask(0), routers("255.255.255.255")}, wantErr: ErrBadLease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := DecideGateway(ack(t, tc.yiaddr, tc.opts...))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err %q does not say %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.Addr.String() != tc.wantGW || g.Source != tc.wantSource || g.Address.String() != tc.wantAddr {
				t.Fatalf("got gw %s source %s addr %s, want %s %s %s", g.Addr, g.Source, g.Address, tc.wantGW, tc.wantSource, tc.wantAddr)
			}
			var rs []string
			for _, r := range g.Routes {
				via := ""
				if !r.OnLink() {
					via = r.Via.String()
				}
				rs = append(rs, r.Dst.String()+" "+via)
			}
			if got := strings.Join(rs, ","); got != tc.wantRoutes {
				t.Fatalf("routes = %q, want %q", got, tc.wantRoutes)
			}
		})
	}
}

func TestDecideGatewayMalformedOption121(t *testing.T) {
	m := ack(t, "192.0.2.10", mask(24), routers("192.0.2.1"))
	m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionClasslessStaticRoute, []byte{33, 1, 2, 3, 4, 5}))
	if _, err := DecideGateway(m); !errors.Is(err, ErrBadLease) || !strings.Contains(err.Error(), "option 121") {
		t.Fatalf("err = %v, want ErrBadLease about option 121", err)
	}
	m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionClasslessStaticRoute, nil))
	m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionRouter, []byte{192, 0, 2}))
	if _, err := DecideGateway(m); !errors.Is(err, ErrNoGateway) {
		t.Fatalf("err = %v, want ErrNoGateway (an empty 121 hides option 3)", err)
	}
	m.Options.Del(dhcpv4.OptionClasslessStaticRoute)
	if _, err := DecideGateway(m); !errors.Is(err, ErrBadLease) || !strings.Contains(err.Error(), "option 3") {
		t.Fatalf("err = %v, want ErrBadLease about option 3", err)
	}
}

func TestParseLease(t *testing.T) {
	m := ack(t, "192.0.2.10", mask(24), routers("192.0.2.1"),
		dhcpv4.OptDNS(net.ParseIP("192.0.2.53"), net.ParseIP("0.0.0.0")),
		dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x05, 0xdc}),
		dhcpv4.OptIPAddressLeaseTime(3600e9),
		dhcpv4.OptServerIdentifier(net.ParseIP("192.0.2.2")))
	l, err := ParseLease(m)
	if err != nil {
		t.Fatal(err)
	}
	r := l.result()
	if r.MTU != 1500 || r.LeaseSeconds != 3600 || r.Server != "192.0.2.2" || len(r.DNS) != 1 || r.DNS[0] != "192.0.2.53" {
		t.Fatalf("result = %+v", r)
	}
	// An MTU below the RFC 2132 minimum of 68 is ignored, not fatal.
	m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{0, 20}))
	if l, err := ParseLease(m); err != nil || l.MTU != 0 {
		t.Fatalf("MTU 20: lease %+v err %v, want MTU 0", l, err)
	}
}

// checkLeaseInvariants fails when a lease DecideGateway accepted breaks the
// rules it promises.
func checkLeaseInvariants(t *testing.T, g Gateway) {
	t.Helper()
	if !g.Address.IsValid() || !isUnicast(g.Address.Addr()) {
		t.Fatalf("accepted lease with address %v", g.Address)
	}
	if !isUnicast(g.Addr) || g.Addr == g.Address.Addr() {
		t.Fatalf("accepted gateway %v for address %v", g.Addr, g.Address)
	}
	onLink := g.Address.Masked().Contains(g.Addr)
	hasDefault := false
	for _, r := range g.Routes {
		if r.OnLink() && r.Dst.Contains(g.Addr) {
			onLink = true
		}
		if r.Dst.Bits() == 0 && r.Via == g.Addr {
			hasDefault = true
		}
	}
	if !onLink || !hasDefault {
		t.Fatalf("accepted gateway %v: on-link %v, default route %v (routes %v)", g.Addr, onLink, hasDefault, g.Routes)
	}
	if g.Source != SourceOption3 && g.Source != SourceOption121 {
		t.Fatalf("source %q", g.Source)
	}
}

// FuzzDecideGateway feeds arbitrary option 1, 3 and 121 payloads.
func FuzzDecideGateway(f *testing.F) {
	f.Add([]byte{192, 0, 2, 10}, []byte{255, 255, 255, 0}, []byte{192, 0, 2, 1}, []byte{}, false)
	f.Add([]byte{192, 0, 2, 10}, []byte{255, 255, 255, 0}, []byte{192, 0, 2, 254}, []byte{0, 192, 0, 2, 1}, true)
	f.Add([]byte{10, 0, 0, 50}, []byte{255, 255, 255, 255}, []byte{}, []byte{32, 10, 0, 0, 1, 0, 0, 0, 0, 0, 10, 0, 0, 1}, true)
	f.Add([]byte{10, 0, 0, 50}, []byte{255, 0, 255}, []byte{10, 0}, []byte{33, 1}, true)
	f.Fuzz(func(t *testing.T, yiaddr, maskB, router, cls []byte, has121 bool) {
		m, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
		if err != nil {
			t.Fatal(err)
		}
		m.YourIPAddr = net.IP(yiaddr)
		if len(maskB) > 0 {
			m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionSubnetMask, maskB))
		}
		if len(router) > 0 {
			m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionRouter, router))
		}
		if has121 {
			m.Options.Update(dhcpv4.OptGeneric(dhcpv4.OptionClasslessStaticRoute, cls))
		}
		g, err := DecideGateway(m)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		checkLeaseInvariants(t, g)
		if has121 && g.Source != SourceOption121 {
			t.Fatalf("option 121 present but source %s", g.Source)
		}
	})
}

// FuzzParseLease decodes arbitrary bytes as a DHCP message and decides.
func FuzzParseLease(f *testing.F) {
	f.Add(ack(f, "192.0.2.10", mask(24), routers("192.0.2.1")).ToBytes())
	f.Add(ack(f, "10.0.0.50", mask(32), classless("10.0.0.1/32", "0.0.0.0", "0.0.0.0/0", "10.0.0.1"),
		dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x23, 0x28})).ToBytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		l, err := ParseLease(m)
		if err != nil {
			return
		}
		checkLeaseInvariants(t, l.Gateway)
		if l.MTU != 0 && l.MTU < 68 {
			t.Fatalf("MTU %d accepted", l.MTU)
		}
		r := l.result()
		if _, err := netip.ParsePrefix(r.Address); err != nil {
			t.Fatalf("result address %q: %v", r.Address, err)
		}
	})
}
