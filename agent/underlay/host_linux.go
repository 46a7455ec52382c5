package underlay

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// netlinkHost is the Linux kernel boundary: netlink for links, routes and
// applying; AF_PACKET sockets (nclient4) for DHCP on unconfigured links.
type netlinkHost struct{}

func newHost(Options) (host, error) { return netlinkHost{}, nil }

// Links lists links with the gateway of their lowest-metric IPv4 default
// route in the main table.
func (netlinkHost) Links() ([]Link, error) {
	nls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	type def struct {
		via    string
		metric int
	}
	defaults := map[int]def{}
	note := func(idx int, gw net.IP, metric int) {
		via := "on-link"
		if gw != nil && !gw.IsUnspecified() {
			via = gw.String()
		}
		if d, ok := defaults[idx]; !ok || metric < d.metric {
			defaults[idx] = def{via, metric}
		}
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if len(r.MultiPath) > 0 {
			for _, nh := range r.MultiPath {
				note(nh.LinkIndex, nh.Gw, r.Priority)
			}
			continue
		}
		note(r.LinkIndex, r.Gw, r.Priority)
	}

	out := make([]Link, 0, len(nls))
	for _, nl := range nls {
		a := nl.Attrs()
		l := Link{
			Name:     a.Name,
			Index:    a.Index,
			MAC:      a.HardwareAddr,
			Kind:     nl.Type(),
			Loopback: a.Flags&net.FlagLoopback != 0,
			Up: a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperDown &&
				a.OperState != netlink.OperLowerLayerDown && a.OperState != netlink.OperNotPresent,
		}
		if d, ok := defaults[a.Index]; ok {
			l.HasDefault, l.DefaultVia = true, d.via
		}
		out = append(out, l)
	}
	return out, nil
}

// dhcpClientProgram is a classic BPF program that passes only unfragmented
// UDP datagrams to port 68, so a busy underlay link does not wake the
// client for every IPv4 packet. The socket is SOCK_DGRAM: offsets are from
// the IP header.
var dhcpClientProgram = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 9, Size: 1}, // IP protocol
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_UDP, SkipTrue: 6},
	bpf.LoadAbsolute{Off: 6, Size: 2}, // flags + fragment offset
	bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 4},
	bpf.LoadMemShift{Off: 0},          // X = IP header length
	bpf.LoadIndirect{Off: 2, Size: 2}, // UDP destination port
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: nclient4.ClientPort, SkipTrue: 1},
	bpf.RetConstant{Val: 0xffff},
	bpf.RetConstant{Val: 0},
}

var dhcpClientFilter = sync.OnceValues(func() ([]bpf.RawInstruction, error) {
	return bpf.Assemble(dhcpClientProgram)
})

// Open opens a raw (AF_PACKET) socket on the link, filtered to DHCP client
// traffic: it works on an unconfigured interface and sends broadcast frames.
func (netlinkHost) Open(l Link) (net.PacketConn, error) {
	filter, err := dhcpClientFilter()
	if err != nil {
		return nil, fmt.Errorf("assembling the DHCP BPF filter: %w", err)
	}
	ifi := &net.Interface{Index: l.Index, Name: l.Name, HardwareAddr: l.MAC}
	pc, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IP, &packet.Config{Filter: filter})
	if err != nil {
		return nil, err
	}
	return nclient4.NewBroadcastUDPConn(pc, &net.UDPAddr{Port: nclient4.ClientPort}), nil
}

// Apply configures the lease: MTU (option 26), the address, the on-link
// routes (so a /32 lease reaches its gateway), then the routes via gateways.
// Routes are tagged proto dhcp. The address is installed without a lifetime:
// tfsite does not renew leases, so images that use --apply run no other
// DHCP client and rely on the server keeping the binding.
func (netlinkHost) Apply(l Link, lease *Lease) error {
	nl, err := netlink.LinkByIndex(l.Index)
	if err != nil {
		return fmt.Errorf("finding link: %w", err)
	}
	var errs []error
	if lease.MTU > 0 && lease.MTU != nl.Attrs().MTU {
		if err := netlink.LinkSetMTU(nl, lease.MTU); err != nil {
			errs = append(errs, fmt.Errorf("setting MTU %d: %w", lease.MTU, err))
		}
	}
	addr := &netlink.Addr{IPNet: prefixNet(lease.Address)}
	if err := netlink.AddrReplace(nl, addr); err != nil {
		return errors.Join(append(errs, fmt.Errorf("adding address %s: %w", lease.Address, err))...)
	}
	// On-link routes first: routes via a gateway may need them.
	for _, onlinkPass := range []bool{true, false} {
		for _, r := range lease.Routes {
			if r.OnLink() != onlinkPass {
				continue
			}
			nr := &netlink.Route{LinkIndex: l.Index, Dst: prefixNet(r.Dst), Protocol: unix.RTPROT_DHCP}
			if r.OnLink() {
				nr.Scope = netlink.SCOPE_LINK
			} else {
				nr.Gw = r.Via.AsSlice()
			}
			if err := netlink.RouteReplace(nr); err != nil {
				errs = append(errs, fmt.Errorf("adding route %s via %s: %w", r.Dst, viaString(r), err))
			}
		}
	}
	return errors.Join(errs...)
}

func viaString(r LeaseRoute) string {
	if r.OnLink() {
		return "on-link"
	}
	return r.Via.String()
}
