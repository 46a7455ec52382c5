package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the Kernel that talks to the calling thread's network
// namespace through rtnetlink.
type Netlink struct{}

var _ Kernel = Netlink{}

func toPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func toAddr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

func toIPNet(p netip.Prefix) *net.IPNet {
	if !p.IsValid() {
		return nil
	}
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

func defaultDst(f nethelpers.Family) *net.IPNet {
	if f == nethelpers.FamilyInet6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// skipAddr leaves out what the kernel manages by itself: IPv6 link-local.
func skipAddr(p netip.Prefix) bool { return p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() }

// skipRoute leaves out the local table and IPv6 link-local/multicast routes.
func skipRoute(r netlink.Route) bool {
	if r.Table == unix.RT_TABLE_LOCAL || len(r.MultiPath) > 0 {
		return true
	}
	if r.Dst != nil && r.Dst.IP.To4() == nil {
		a := toAddr(r.Dst.IP)
		return a.IsLinkLocalUnicast() || a.IsMulticast()
	}
	return false
}

func linkKind(l netlink.Link) string {
	if t := l.Type(); t != "device" {
		return t
	}
	return ""
}

// Snapshot implements Kernel.
func (Netlink) Snapshot() (*State, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	s := &State{}
	for _, l := range links {
		a := l.Attrs()
		s.Links = append(s.Links, Link{Name: a.Name, Kind: linkKind(l), Up: a.Flags&net.FlagUp != 0, MTU: uint32(a.MTU), Master: names[a.MasterIndex]})
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		p := toPrefix(a.IPNet)
		if !p.IsValid() || skipAddr(p) {
			continue
		}
		s.Addresses = append(s.Addresses, Address{Address: p, LinkName: names[a.LinkIndex], Family: family(p.Addr()),
			Scope: nethelpers.Scope(a.Scope), Broadcast: toAddr(a.Broadcast)})
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	for _, r := range routes {
		if skipRoute(r) {
			continue
		}
		s.Routes = append(s.Routes, fromRoute(r, names))
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := netlink.RuleList(fam)
		if err != nil {
			return nil, fmt.Errorf("listing rules: %w", err)
		}
		for _, r := range rules {
			s.Rules = append(s.Rules, fromRule(r, fam))
		}
	}
	s.Sort()
	return s, nil
}

func fromRoute(r netlink.Route, names map[int]string) Route {
	fam := nethelpers.Family(r.Family)
	out := Route{Family: fam, Source: toAddr(r.Src), Gateway: toAddr(r.Gw), OutLinkName: names[r.LinkIndex],
		Table: nethelpers.RoutingTable(r.Table), Priority: uint32(r.Priority), Scope: nethelpers.Scope(r.Scope),
		Type: nethelpers.RouteType(r.Type), Protocol: nethelpers.RouteProtocol(r.Protocol)}
	if p := toPrefix(r.Dst); p.IsValid() && p.Bits() > 0 {
		out.Destination = p
	}
	return out
}

func fromRule(r netlink.Rule, fam int) Rule {
	out := Rule{Family: nethelpers.Family(fam), Src: toPrefix(r.Src), Dst: toPrefix(r.Dst), Table: nethelpers.RoutingTable(r.Table),
		Action: nethelpers.RoutingRuleAction(r.Type), IIFName: r.IifName, OIFName: r.OifName, FwMark: r.Mark}
	if r.Priority > 0 {
		out.Priority = uint32(r.Priority)
	}
	if r.Mask != nil {
		out.FwMask = *r.Mask
	}
	return out
}

func toRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = int(r.Family)
	nr.Priority = int(r.Priority)
	nr.Table = int(r.Table)
	nr.Src, nr.Dst = toIPNet(r.Src), toIPNet(r.Dst)
	nr.IifName, nr.OifName = r.IIFName, r.OIFName
	nr.Mark = r.FwMark
	if r.FwMask != 0 {
		m := r.FwMask
		nr.Mask = &m
	}
	nr.Type = uint8(r.Action)
	return nr
}

func linkByName(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("no link %q: %w", name, err)
	}
	return l, nil
}

func toRoute(r Route) (*netlink.Route, error) {
	nr := &netlink.Route{Family: int(r.Family), Dst: toIPNet(r.Destination), Table: int(r.Table), Priority: int(r.Priority),
		Scope: netlink.Scope(r.Scope), Type: int(r.Type), Protocol: netlink.RouteProtocol(r.Protocol)}
	if nr.Dst == nil {
		nr.Dst = defaultDst(r.Family)
	}
	if r.Gateway.IsValid() {
		nr.Gw = r.Gateway.AsSlice()
	}
	if r.Source.IsValid() {
		nr.Src = r.Source.AsSlice()
	}
	if r.OutLinkName != "" {
		l, err := linkByName(r.OutLinkName)
		if err != nil {
			return nil, err
		}
		nr.LinkIndex = l.Attrs().Index
	}
	return nr, nil
}

// Converge implements Kernel. It reports every step that failed, after
// trying them all.
func (k Netlink) Converge(s *State, removeLinks []string) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, name := range removeLinks {
		if _, keep := s.Link(name); keep {
			continue
		}
		if l, err := netlink.LinkByName(name); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				fail("deleting link %s: %w", name, err)
			}
		}
	}
	for _, want := range s.Links {
		l, err := netlink.LinkByName(want.Name)
		if err != nil {
			l, err = createLink(want)
		}
		if err != nil {
			fail("%w", err)
			continue
		}
		a := l.Attrs()
		curMaster := ""
		if a.MasterIndex != 0 {
			if m, err := netlink.LinkByIndex(a.MasterIndex); err == nil {
				curMaster = m.Attrs().Name
			}
		}
		if curMaster != want.Master {
			if want.Master == "" {
				err = netlink.LinkSetNoMaster(l)
			} else if m, err2 := linkByName(want.Master); err2 != nil {
				err = err2
			} else {
				err = netlink.LinkSetMaster(l, m)
			}
			if err != nil {
				fail("setting master of %s to %q: %w", want.Name, want.Master, err)
			}
		}
		if uint32(a.MTU) != want.MTU && want.MTU != 0 {
			if err := netlink.LinkSetMTU(l, int(want.MTU)); err != nil {
				fail("setting MTU of %s: %w", want.Name, err)
			}
		}
		if up := a.Flags&net.FlagUp != 0; up != want.Up {
			if want.Up {
				err = netlink.LinkSetUp(l)
			} else {
				err = netlink.LinkSetDown(l)
			}
			if err != nil {
				fail("setting %s up=%v: %w", want.Name, want.Up, err)
			}
		}
	}
	cur, err := k.Snapshot()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	addrKey := func(a Address) string { return a.LinkName + " " + a.Address.String() }
	wantAddr := map[string]bool{}
	for _, a := range s.Addresses {
		wantAddr[addrKey(a)] = true
	}
	haveAddr := map[string]bool{}
	for _, a := range cur.Addresses {
		haveAddr[addrKey(a)] = true
		if !wantAddr[addrKey(a)] {
			if err := addrDel(a); err != nil {
				fail("removing address %s from %s: %w", a.Address, a.LinkName, err)
			}
		}
	}
	for _, a := range s.Addresses {
		if !haveAddr[addrKey(a)] {
			if err := restoreAddr(a); err != nil {
				fail("adding address %s to %s: %w", a.Address, a.LinkName, err)
			}
		}
	}
	if cur, err = k.Snapshot(); err != nil {
		return errors.Join(append(errs, err)...)
	}
	wantRoute := map[string]bool{}
	for _, r := range s.Routes {
		wantRoute[r.Key()] = true
	}
	for _, r := range cur.Routes {
		if !r.Kernel() && !wantRoute[r.Key()] {
			nr, err := toRoute(r)
			if err == nil {
				err = netlink.RouteDel(nr)
			}
			if err != nil && !errors.Is(err, unix.ESRCH) {
				fail("deleting route %s: %w", r, err)
			}
		}
	}
	errs = append(errs, addMissingRoutes(s, k)...)
	for _, rule := range cur.Rules {
		if !slices.ContainsFunc(s.Rules, func(w Rule) bool { return w.Key() == rule.Key() }) {
			if err := netlink.RuleDel(toRule(rule)); err != nil {
				fail("deleting rule %s: %w", rule, err)
			}
		}
	}
	for _, rule := range s.Rules {
		if !slices.ContainsFunc(cur.Rules, func(c Rule) bool { return c.Key() == rule.Key() }) {
			if err := netlink.RuleAdd(toRule(rule)); err != nil {
				fail("adding rule %s: %w", rule, err)
			}
		}
	}
	return errors.Join(errs...)
}

// createLink creates a missing bridge or veth pair (a veth's peer comes with
// it); other links cannot be made from a State.
func createLink(want Link) (netlink.Link, error) {
	var l netlink.Link
	switch {
	case want.Kind == "bridge":
		l = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: want.Name}}
	case want.Kind == "veth" && want.Peer != "":
		l = &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: want.Name}, PeerName: want.Peer}
	default:
		return nil, fmt.Errorf("link %s is gone and cannot be recreated", want.Name)
	}
	if err := netlink.LinkAdd(l); err != nil {
		return nil, fmt.Errorf("adding link %s (%s): %w", want.Name, want.Kind, err)
	}
	return netlink.LinkByName(want.Name)
}

// addMissingRoutes adds s's routes the kernel lacks; it makes a few passes
// since a gateway may be reachable only through another route being added.
func addMissingRoutes(s *State, k Netlink) []error {
	var last []error
	for range 3 {
		cur, err := k.Snapshot()
		if err != nil {
			return []error{err}
		}
		have := map[string]bool{}
		for _, r := range cur.Routes {
			have[r.Key()] = true
		}
		last = nil
		for _, r := range s.Routes {
			if have[r.Key()] || r.Kernel() {
				continue
			}
			nr, err := toRoute(r)
			if err == nil {
				err = netlink.RouteAdd(nr)
			}
			if err != nil && !errors.Is(err, unix.EEXIST) {
				last = append(last, fmt.Errorf("adding route %s: %w", r, err))
			}
		}
		if len(last) == 0 {
			return nil
		}
	}
	return last
}

// restoreAddr adds a snapshot address as it was, broadcast (or none) included.
func restoreAddr(a Address) error {
	l, err := linkByName(a.LinkName)
	if err != nil {
		return err
	}
	na := &netlink.Addr{IPNet: toIPNet(a.Address), Scope: int(a.Scope)}
	if a.Address.Addr().Is4() {
		na.Broadcast = net.IPv4zero // none, unless the snapshot has one
		if a.Broadcast.IsValid() {
			na.Broadcast = a.Broadcast.AsSlice()
		}
	}
	return netlink.AddrAdd(l, na)
}

// addrDel removes an address; one already gone (a secondary address goes
// with its primary) is fine.
func addrDel(a Address) error {
	l, err := linkByName(a.LinkName)
	if err != nil {
		return err
	}
	err = netlink.AddrDel(l, &netlink.Addr{IPNet: toIPNet(a.Address)})
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
