package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
)

// The steps: one type per kind of operation, with how it is compiled from
// an Operation and how it changes the model (Apply converges the kernel to
// the model, kernel_linux.go).

// setAddresses replaces a link's addresses (IPv6 link-local ones stay).
type setAddresses struct {
	link  string
	addrs []netip.Prefix
}

func compileSetAddresses(op Operation) (step, []error) {
	var p problems
	p.link("link", op.Link)
	st := setAddresses{link: op.Link}
	for _, a := range op.Addresses {
		st.addrs = append(st.addrs, p.hostPrefix("address", a))
	}
	return st, p
}

func (st setAddresses) simulate(s *State) error {
	if err := s.needLinks(st.link); err != nil {
		return err
	}
	s.delAddrs(st.link, func(a Address) bool { return a.Address.Addr().IsLinkLocalUnicast() })
	for _, pf := range st.addrs {
		if err := s.addAddr(st.link, pf); err != nil {
			return err
		}
	}
	return nil
}

// address adds (or, with del, removes) one address.
type address struct {
	del  bool
	link string
	addr netip.Prefix
}

func compileAddress(op Operation) (step, []error) {
	var p problems
	p.link("link", op.Link)
	st := address{del: op.Op == OpDelAddress, link: op.Link}
	if op.Address == "" {
		p.add(errors.New("address is required (CIDR, e.g. 192.0.2.10/24)"))
	} else {
		st.addr = p.hostPrefix("address", op.Address)
	}
	return st, p
}

func (st address) simulate(s *State) error {
	if err := s.needLinks(st.link); err != nil {
		return err
	}
	if !st.del {
		return s.addAddr(st.link, st.addr)
	}
	n := len(s.Addresses)
	s.delAddrs(st.link, func(a Address) bool { return a.Address != st.addr })
	if len(s.Addresses) == n {
		return fmt.Errorf("address %s is not on %s", st.addr, st.link)
	}
	return nil
}

// moveAddresses moves a link's addresses and routes to another link, as TF's
// vhost0 takes over its physical interface.
type moveAddresses struct{ from, to string }

func compileMoveAddresses(op Operation) (step, []error) {
	var p problems
	p.link("link", op.Link)
	p.link("target", op.Target)
	if op.Link == op.Target && op.Link != "" {
		p.add(fmt.Errorf("link and target are both %q", op.Link))
	}
	return moveAddresses{from: op.Link, to: op.Target}, p
}

func (st moveAddresses) simulate(s *State) error {
	if err := s.needLinks(st.from, st.to); err != nil {
		return err
	}
	moved := 0
	for i, a := range s.Addresses {
		if a.LinkName == st.from && !a.Address.Addr().IsLinkLocalUnicast() {
			s.Addresses[i].LinkName = st.to
			moved++
		}
	}
	if moved == 0 {
		return fmt.Errorf("%s has no addresses to move", st.from)
	}
	for i, r := range s.Routes {
		if r.OutLinkName == st.from && !r.Kernel() {
			s.Routes[i].OutLinkName = st.to
		}
	}
	return nil
}

// defaultRoute replaces the default route of the gateway's family in a table.
type defaultRoute struct{ route Route }

func compileDefaultRoute(op Operation) (step, []error) {
	var p problems
	gw := p.gateway(op.Gateway)
	p.optionalLink("link", op.Link)
	return defaultRoute{Route{Family: family(gw), Gateway: gw, OutLinkName: op.Link, Table: tableOf(op.Table), Priority: op.Metric,
		Type: nethelpers.TypeUnicast, Protocol: nethelpers.ProtocolStatic}}, p
}

func (st defaultRoute) simulate(s *State) error {
	r := st.route
	if r.OutLinkName != "" {
		if err := s.needLinks(r.OutLinkName); err != nil {
			return err
		}
	}
	s.Routes = slices.DeleteFunc(s.Routes, func(c Route) bool { return c.Table == r.Table && c.Family == r.Family && c.IsDefault() })
	s.Routes = append(s.Routes, s.resolved(r))
	return nil
}

// route adds (or, with del, removes) a static route. A deletion matches on
// the fields given: no gateway, link or metric matches any.
type route struct {
	del   bool
	route Route
}

func compileRoute(op Operation) (step, []error) {
	var p problems
	dst, err := parseDestination(op.Destination)
	p.add(err)
	var gw netip.Addr
	if op.Gateway != "" {
		gw = p.gateway(op.Gateway)
	}
	p.optionalLink("link", op.Link)
	if op.Op == OpAddRoute && op.Gateway == "" && op.Link == "" {
		p.add(errors.New("needs gateway, link or both"))
	}
	fam := nethelpers.FamilyInet4
	if dst.IsValid() {
		fam = family(dst.Addr())
	} else if gw.IsValid() {
		fam = family(gw)
	}
	if gw.IsValid() && family(gw) != fam {
		p.add(fmt.Errorf("gateway %s and destination %s are of different families", gw, dst))
	}
	scope := nethelpers.ScopeGlobal
	if !gw.IsValid() {
		scope = nethelpers.ScopeLink // a device route, as `ip route add PREFIX dev LINK` makes it
	}
	return route{del: op.Op == OpDelRoute, route: Route{Family: fam, Destination: dst, Gateway: gw, OutLinkName: op.Link,
		Table: tableOf(op.Table), Priority: op.Metric, Scope: scope, Type: nethelpers.TypeUnicast, Protocol: nethelpers.ProtocolStatic}}, p
}

// matches reports whether c is a route st.del removes.
func (st route) matches(c Route) bool {
	r := st.route
	return c.Table == r.Table && c.Family == r.Family && c.IsDefault() == !r.Destination.IsValid() &&
		(!r.Destination.IsValid() || c.Destination == r.Destination) && (!r.Gateway.IsValid() || c.Gateway == r.Gateway) &&
		(r.OutLinkName == "" || c.OutLinkName == r.OutLinkName) && (r.Priority == 0 || c.Priority == r.Priority)
}

func (st route) simulate(s *State) error {
	if l := st.route.OutLinkName; l != "" {
		if err := s.needLinks(l); err != nil {
			return err
		}
	}
	if !st.del {
		s.Routes = append(s.Routes, s.resolved(st.route))
		return nil
	}
	n := len(s.Routes)
	s.Routes = slices.DeleteFunc(s.Routes, st.matches)
	if len(s.Routes) == n {
		dst := "default"
		if st.route.Destination.IsValid() {
			dst = st.route.Destination.String()
		}
		return fmt.Errorf("no route %s to delete", dst)
	}
	return nil
}

// setMTU sets a link's MTU.
type setMTU struct {
	link string
	mtu  uint32
}

func compileSetMTU(op Operation) (step, []error) {
	var p problems
	p.link("link", op.Link)
	if op.MTU < 68 || op.MTU > 65535 {
		p.add(fmt.Errorf("mtu %d: want 68..65535", op.MTU))
	}
	return setMTU{op.Link, op.MTU}, p
}

func (st setMTU) simulate(s *State) error {
	i, err := s.linkIndex(st.link)
	if err == nil {
		s.Links[i].MTU = st.mtu
	}
	return err
}

// linkState sets a link up or down.
type linkState struct {
	link string
	up   bool
}

func compileLinkState(op Operation) (step, []error) {
	var p problems
	p.link("link", op.Link)
	return linkState{op.Link, op.Op == OpLinkUp}, p
}

func (st linkState) simulate(s *State) error {
	i, err := s.linkIndex(st.link)
	if err != nil {
		return err
	}
	s.Links[i].Up = st.up
	if !st.up { // the kernel drops the routes through a link going down
		s.Routes = slices.DeleteFunc(s.Routes, func(r Route) bool { return r.OutLinkName == st.link })
	}
	return nil
}

// addLink adds a bridge, or a veth pair (link and peer).
type addLink struct{ link, kind, peer string }

func compileAddLink(op Operation) (step, []error) {
	var p problems
	p.link("link", op.Link)
	switch op.Kind {
	case "bridge":
		if op.Peer != "" {
			p.add(errors.New("peer is only for kind veth"))
		}
	case "veth":
		p.link("peer", op.Peer)
		if op.Link == op.Peer && op.Link != "" {
			p.add(fmt.Errorf("link and peer are both %q", op.Link))
		}
	default:
		p.add(fmt.Errorf("kind %q: want bridge or veth", op.Kind))
	}
	return addLink{op.Link, op.Kind, op.Peer}, p
}

// names lists the links st creates.
func (st addLink) names() []string {
	if st.peer != "" {
		return []string{st.link, st.peer}
	}
	return []string{st.link}
}

func (st addLink) simulate(s *State) error {
	for _, name := range st.names() {
		if _, err := s.linkIndex(name); err == nil {
			return fmt.Errorf("link %q already exists", name)
		}
	}
	s.Links = append(s.Links, Link{Name: st.link, Kind: st.kind, MTU: 1500, Peer: st.peer})
	if st.peer != "" {
		s.Links = append(s.Links, Link{Name: st.peer, Kind: st.kind, MTU: 1500, Peer: st.link})
	}
	return nil
}

// delLink deletes a link, with its addresses and routes; links it enslaved
// are released.
type delLink struct{ link string }

func compileDelLink(op Operation) (step, []error) {
	var p problems
	p.link("link", op.Link)
	return delLink{op.Link}, p
}

func (st delLink) simulate(s *State) error {
	i, err := s.linkIndex(st.link)
	if err != nil {
		return err
	}
	s.Links = slices.Delete(s.Links, i, i+1)
	s.delAddrs(st.link, func(Address) bool { return false })
	s.Routes = slices.DeleteFunc(s.Routes, func(r Route) bool { return r.OutLinkName == st.link })
	for j := range s.Links {
		if s.Links[j].Master == st.link {
			s.Links[j].Master = ""
		}
	}
	return nil
}

// setMaster enslaves a link to a bridge ("" releases it).
type setMaster struct{ link, master string }

func compileSetMaster(op Operation) (step, []error) {
	var p problems
	p.link("link", op.Link)
	st := setMaster{link: op.Link}
	switch {
	case op.Master == nil:
		p.add(errors.New(`master is required (a bridge's name, or "" to release the link)`))
	case *op.Master != "":
		st.master = *op.Master
		p.link("master", st.master)
		if st.master == op.Link {
			p.add(fmt.Errorf("link %s cannot be its own master", st.master))
		}
	}
	return st, p
}

func (st setMaster) simulate(s *State) error {
	i, err := s.linkIndex(st.link)
	if err != nil {
		return err
	}
	if st.master != "" {
		j, err := s.linkIndex(st.master)
		if err != nil {
			return err
		}
		if s.Links[j].Kind != "bridge" {
			return fmt.Errorf("master %s is not a bridge", st.master)
		}
	}
	s.Links[i].Master = st.master
	return nil
}
