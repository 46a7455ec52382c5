package membership

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// partition is a switchable network between test nodes: nodes in
// different groups cannot exchange packets or streams.
type partition struct {
	mu    sync.Mutex
	group map[string]int // "ip:port" → group
}

func (p *partition) set(addr netip.AddrPort, g int) {
	p.mu.Lock()
	p.group[addr.String()] = g
	p.mu.Unlock()
}

func (p *partition) blocked(a, b string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.group[a] != p.group[b]
}

type cutTransport struct {
	memberlist.NodeAwareTransport
	p       *partition
	selfMu  sync.Mutex
	self_   string
	packets chan *memberlist.Packet
	streams chan net.Conn
}

func (p *partition) wrap(inner memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	ct := &cutTransport{NodeAwareTransport: inner, p: p, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn)}
	go func() {
		for pk := range inner.PacketCh() {
			if self := ct.self(); self != "" && p.blocked(self, pk.From.String()) {
				continue
			}
			ct.packets <- pk
		}
	}()
	go func() {
		for c := range inner.StreamCh() {
			if self := ct.self(); self != "" && p.blocked(self, c.RemoteAddr().String()) {
				c.Close()
				continue
			}
			ct.streams <- c
		}
	}()
	return ct
}

func (c *cutTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	a, p, err := c.NodeAwareTransport.FinalAdvertiseAddr(ip, port)
	if err == nil {
		c.selfMu.Lock()
		c.self_ = net.JoinHostPort(a.String(), fmt.Sprint(p))
		c.selfMu.Unlock()
	}
	return a, p, err
}

func (c *cutTransport) self() string {
	c.selfMu.Lock()
	defer c.selfMu.Unlock()
	return c.self_
}
func (c *cutTransport) PacketCh() <-chan *memberlist.Packet { return c.packets }
func (c *cutTransport) StreamCh() <-chan net.Conn           { return c.streams }
func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.p.blocked(c.self(), addr) {
		return time.Now(), nil // dropped on the wire
	}
	return c.NodeAwareTransport.WriteTo(b, addr)
}
func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return c.WriteTo(b, a.Addr)
}
func (c *cutTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if c.p.blocked(c.self(), addr) {
		return nil, errors.New("partitioned")
	}
	return c.NodeAwareTransport.DialTimeout(addr, d)
}
func (c *cutTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	return c.DialTimeout(a.Addr, d)
}

func TestRejoinAfterPartitionHeals(t *testing.T) {
	p := &partition{group: map[string]int{}}
	cut := func(c *Config) {
		c.wrapTransport = p.wrap
		// A lone node gets no confirmations and would wait the maximum
		// suspicion time (6x); keep the test short.
		c.tune = func(mc *memberlist.Config) { mc.SuspicionMaxTimeoutMult = 1 }
	}
	a := startNode(t, "a", nil, cut)
	b := startNode(t, "b", []string{a.LocalAddr().String()}, cut)
	c := startNode(t, "c", []string{a.LocalAddr().String()}, cut)
	eventually(t, "all joined", 20*time.Second, func() bool { return allAlive(a, "b", "c") && allAlive(c, "a", "b") }, a, c)
	p.set(c.LocalAddr(), 1) // cut c off
	eventually(t, "both sides to declare the other dead", 40*time.Second, func() bool {
		sa, sc := states(a), states(c)
		return sa["c"] == StateDead && sc["a"] == StateDead && sc["b"] == StateDead
	}, a, c)
	t.Logf("partition detected at %s", time.Now().Format("05.000"))
	p.set(c.LocalAddr(), 0) // heal
	eventually(t, "the healed partition to merge again", 40*time.Second, func() bool {
		return allAlive(a, "a", "b", "c") && allAlive(b, "a", "b", "c") && allAlive(c, "a", "b", "c")
	}, a, b, c)
}

// TestSuspectFromFailedProbeEndsWithAck: a site whose probes fail is shown
// suspect (from memberlist's log line), and a later acked probe ends it
// (PingDelegate) — the hold time is an hour here, so nothing else can.
func TestSuspectFromFailedProbeEndsWithAck(t *testing.T) {
	p := &partition{group: map[string]int{}}
	cut := func(c *Config) {
		c.wrapTransport = p.wrap
		c.suspectHold = time.Hour
		// Suspicion lasts long enough to be seen and healed before b is dead.
		c.tune = func(mc *memberlist.Config) { mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = 30, 1 }
	}
	a := startNode(t, "a", nil, cut)
	b := startNode(t, "b", []string{a.LocalAddr().String()}, cut)
	eventually(t, "b joined", 20*time.Second, func() bool { return allAlive(a, "b") }, a)
	p.set(b.LocalAddr(), 1) // a's probes of b fail
	eventually(t, "a to see b suspect", 20*time.Second, func() bool { return states(a)["b"] == StateSuspect }, a)
	p.set(b.LocalAddr(), 0) // heal: the next probe is acked
	eventually(t, "b alive again at a", 20*time.Second, func() bool { return states(a)["b"] == StateAlive }, a)
}
