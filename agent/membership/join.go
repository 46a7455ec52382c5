package membership

// Joining: the seeds and saved peers, the re-join loop, address resolution.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tfsite/tfsite/internal/hostport"
)

// Join joins through addrs ("host:port") now; it returns how many answered.
func (m *Membership) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	n, err := m.ml.Join(addrs)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("joining %s: %w", strings.Join(addrs, ","), err)
	}
	return n, nil
}

// seedAddrs returns the seeds as host:port, without our own address.
func (m *Membership) seedAddrs() []string {
	self := m.LocalAddr().String()
	var out []string
	for _, s := range m.cfg.Seeds {
		a, err := hostport.Normalize(s, DefaultPort)
		if err != nil {
			continue
		}
		if a != self {
			out = append(out, a)
		}
	}
	return out
}

// joinAddrs returns the seeds and the saved peers, each once.
func (m *Membership) joinAddrs() []string {
	out := m.seedAddrs()
	for _, a := range m.saved {
		if !slices.Contains(out, a) && a != m.LocalAddr().String() {
			out = append(out, a)
		}
	}
	return out
}

// rejoin tries known peers that are not alive members (and did not leave);
// when some peer is lost or the site is alone, the seeds and saved peers at
// which no alive member gossips; and always those at which no node this
// site knows of gossips. When every known peer is alive and every seed is
// known, it does nothing, so a large healthy fleet does not keep pushing
// full state at its seeds. The last rule is for a seed that came up after
// this site joined through another one: without it, sites that started at
// once could form two whole-looking halves that never merge. On the first
// round (all) every seed is tried. Reports whether anyone answered.
func (m *Membership) rejoin(ctx context.Context, all bool) bool {
	alive := m.liveNames()
	aliveAt := map[netip.AddrPort]bool{m.local: true}
	seenAt := map[netip.AddrPort]bool{m.local: true}
	var cand []string
	m.mu.Lock()
	for name, n := range m.known {
		if name == m.cfg.Site {
			continue
		}
		a, _ := netip.AddrFromSlice(n.Addr)
		at := netip.AddrPortFrom(a.Unmap(), n.Port)
		seenAt[at] = true
		switch d := m.decoded[name]; {
		case alive[name]:
			aliveAt[at] = true
		case d.err == nil && d.meta.Leaving:
			// left on purpose; it rejoins by itself when back
		default:
			cand = append(cand, n.Address())
		}
	}
	m.mu.Unlock()
	lost := len(cand) > 0 || len(alive) <= 1
	for _, s := range m.joinAddrs() {
		if all {
			cand = append(cand, s)
			continue
		}
		at := resolveJoinAddr(ctx, s)
		in := func(set map[netip.AddrPort]bool) bool {
			return slices.ContainsFunc(at, func(a netip.AddrPort) bool { return set[a] })
		}
		if !in(seenAt) || lost && !in(aliveAt) {
			cand = append(cand, s)
		}
	}
	if len(cand) == 0 {
		return false
	}
	rand.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	if all {
		// First join: one answering seed is enough (memberlist exchanges
		// the full state with it and gossip does the rest). Trying seeds
		// one at a time in random order spreads a crowd of sites starting
		// at once over the seeds, instead of every site pushing and pulling
		// the whole fleet's state with every seed (the seeds are often the
		// voters, which must stay responsive for raft).
		for _, c := range cand {
			if n, err := m.ml.Join([]string{c}); err == nil && n > 0 {
				return true
			}
		}
		m.log.Debug("gossip join found nobody", "tried", cand)
		return false
	}
	if len(cand) > 3 {
		cand = cand[:3] // a few per round: cheap even with hundreds of sites
	}
	n, err := m.ml.Join(cand)
	if err != nil && n == 0 {
		m.log.Debug("gossip re-join found nobody", "tried", cand, "err", err)
		return false
	}
	m.log.Info("gossip re-joined peers", "tried", len(cand), "answered", n)
	return true
}

// resolveJoinAddr returns the addresses a "host:port" join address stands
// for: a host name is resolved (within 2 s); none when it does not parse or
// resolve.
func resolveJoinAddr(ctx context.Context, addr string) []netip.AddrPort {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), uint16(p))}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, _ := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
	}
	return out
}
