package netguard

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/tfsite/tfsite/internal/probe"
)

// NetProber probes from the calling thread's network namespace with real
// packets: ARP on the link that routes to the gateway (mdlayher/arp),
// ICMP echo on a raw socket, TCP connect.
type NetProber struct{}

var _ Prober = NetProber{}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Second)
}

// ARP implements Prober.
func (NetProber) ARP(ctx context.Context, gw probe.Target) error {
	ip := gw.Addr.Addr()
	if !ip.Is4() {
		return nil // IPv6 neighbours answer NDP, not ARP; ICMP covers them.
	}
	routes, err := netlink.RouteGet(ip.AsSlice())
	if err != nil || len(routes) == 0 {
		return fmt.Errorf("no route to gateway %s", ip)
	}
	ifi, err := net.InterfaceByIndex(routes[0].LinkIndex)
	if err != nil {
		return fmt.Errorf("interface towards gateway %s: %w", ip, err)
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return fmt.Errorf("ARP on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	if err := c.SetDeadline(deadlineOf(ctx)); err != nil {
		return err
	}
	if _, err := c.Resolve(ip); err != nil {
		return fmt.Errorf("gateway %s does not answer ARP on %s", ip, ifi.Name)
	}
	return nil
}

// Reach implements Prober.
func (NetProber) Reach(ctx context.Context, t probe.Target) error {
	if t.Proto == "tcp" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t.Addr.String())
		if err != nil {
			return fmt.Errorf("%s: no TCP connection", t)
		}
		return c.Close()
	}
	return echo(ctx, t)
}

func echo(ctx context.Context, t probe.Target) error {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return fmt.Errorf("opening ICMP socket: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(deadlineOf(ctx)); err != nil {
		return err
	}
	id, seq := os.Getpid()&0xffff, rand.IntN(0xffff)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("tfsite-netguard")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	dst := &net.IPAddr{IP: t.Addr.Addr().AsSlice()}
	if _, err := c.WriteTo(b, dst); err != nil {
		return fmt.Errorf("%s: sending echo: %v", t, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("%s: no echo reply", t)
			}
			return fmt.Errorf("%s: %v", t, err)
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq && from.String() == dst.String() {
			return nil
		}
	}
}
