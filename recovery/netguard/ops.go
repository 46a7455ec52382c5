package netguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
)

// step is one operation with its values parsed and checked; it plays itself
// on a State. Validate plays a plan on a copy of the host's snapshot, and
// Apply converges the host to what a step makes of the current snapshot, so
// each kind of operation is written once: its checks and its model.
type step interface {
	simulate(s *State) error
}

// opSpec is what an op name accepts and how it is compiled into a step.
type opSpec struct {
	fields  []string
	compile func(Operation) (step, []error)
}

var opSpecs = map[string]opSpec{
	OpSetAddresses:     {[]string{"link", "addresses"}, compileSetAddresses},
	OpAddAddress:       {[]string{"link", "address"}, compileAddress},
	OpDelAddress:       {[]string{"link", "address"}, compileAddress},
	OpMoveAddresses:    {[]string{"link", "target"}, compileMoveAddresses},
	OpReplaceDefaultGW: {[]string{"gateway", "link", "table", "metric"}, compileDefaultRoute},
	OpAddRoute:         {[]string{"destination", "gateway", "link", "table", "metric"}, compileRoute},
	OpDelRoute:         {[]string{"destination", "gateway", "link", "table", "metric"}, compileRoute},
	OpSetMTU:           {[]string{"link", "mtu"}, compileSetMTU},
	OpLinkUp:           {[]string{"link"}, compileLinkState},
	OpLinkDown:         {[]string{"link"}, compileLinkState},
	OpAddLink:          {[]string{"link", "kind", "peer"}, compileAddLink},
	OpDelLink:          {[]string{"link"}, compileDelLink},
	OpSetMaster:        {[]string{"link", "master"}, compileSetMaster},
}

func opNames() []string {
	names := make([]string, 0, len(opSpecs))
	for k := range opSpecs {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// compile checks op (its name, the fields it takes, their values) and
// returns its step, or every problem found.
func compile(op Operation) (step, []error) {
	spec, ok := opSpecs[op.Op]
	if !ok {
		return nil, []error{fmt.Errorf("unknown op %q (one of %s)", op.Op, strings.Join(opNames(), ", "))}
	}
	var errs []error
	for _, f := range op.setFields() {
		if !slices.Contains(spec.fields, f) {
			errs = append(errs, fmt.Errorf("%s does not take %q (it takes %s)", op.Op, f, strings.Join(spec.fields, ", ")))
		}
	}
	st, verrs := spec.compile(op)
	for _, err := range verrs {
		errs = append(errs, fmt.Errorf("%s: %v", op.Op, err))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return st, nil
}

// Simulate plays op on the in-memory state s as Validate does (without the
// plan-wide rules: deleting only links the plan added, protected addresses).
// Apply and the in-memory Model use it.
func (op Operation) Simulate(s *State) error {
	st, errs := compile(op)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidPlan, joinOneLine(errs))
	}
	return st.simulate(s)
}

// Apply performs one plan operation on k the way Talos drives the kernel
// from a spec: it plays op on a snapshot and converges the host to the
// result, so the model Validate checks is exactly what is applied.
func Apply(k Kernel, op Operation) error {
	cur, err := k.Snapshot()
	if err != nil {
		return err
	}
	want := cur.Clone()
	if err := op.Simulate(want); err != nil {
		return err
	}
	var gone []string
	for _, l := range cur.Links {
		if _, ok := want.Link(l.Name); !ok {
			gone = append(gone, l.Name)
		}
	}
	return k.Converge(want, gone)
}

func (op Operation) setFields() []string {
	var f []string
	add := func(name string, set bool) {
		if set {
			f = append(f, name)
		}
	}
	add("link", op.Link != "")
	add("target", op.Target != "")
	add("master", op.Master != nil)
	add("kind", op.Kind != "")
	add("peer", op.Peer != "")
	add("address", op.Address != "")
	add("addresses", op.Addresses != nil)
	add("destination", op.Destination != "")
	add("gateway", op.Gateway != "")
	add("table", op.Table != 0)
	add("metric", op.Metric != 0)
	add("mtu", op.MTU != 0)
	return f
}

// problems collects the errors of one operation's checks.
type problems []error

func (p *problems) add(err error) {
	if err != nil {
		*p = append(*p, err)
	}
}

func (p *problems) link(field, name string) { p.add(checkLinkName(field, name)) }

func (p *problems) optionalLink(field, name string) {
	if name != "" {
		p.link(field, name)
	}
}

func (p *problems) hostPrefix(field, s string) netip.Prefix {
	pf, err := parseHostPrefix(s)
	if err != nil {
		p.add(fmt.Errorf("%s %q: %v", field, s, err))
	}
	return pf
}

func (p *problems) gateway(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		p.add(fmt.Errorf("gateway %q: want an IP address", s))
	}
	return a
}

func checkLinkName(field, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is required", field)
	case len(name) > maxInterfaceNameSize:
		return fmt.Errorf("%s %q is longer than %d bytes", field, name, maxInterfaceNameSize)
	case strings.ContainsAny(name, "/ \t\n:") || name == "." || name == "..":
		return fmt.Errorf("%s %q is not a valid interface name", field, name)
	}
	return nil
}

// parseHostPrefix parses an interface address in CIDR form (host bits kept).
func parseHostPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errors.New("want an address in CIDR form, e.g. 192.0.2.10/24")
	}
	if p.Addr().Zone() != "" || p.Addr().IsUnspecified() || p.Addr().IsMulticast() {
		return netip.Prefix{}, errors.New("not a unicast interface address")
	}
	return p, nil
}

// parseDestination parses a route destination: "default" or a network prefix.
func parseDestination(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New(`destination is required ("default" or a prefix like 10.1.0.0/16)`)
	}
	if s == "default" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("destination %q: want \"default\" or a prefix like 10.1.0.0/16", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("destination %q has host bits set (did you mean %s?)", s, p.Masked())
	}
	return p, nil
}

func family(a netip.Addr) nethelpers.Family {
	if a.Unmap().Is4() {
		return nethelpers.FamilyInet4
	}
	return nethelpers.FamilyInet6
}

func tableOf(t uint32) nethelpers.RoutingTable {
	if t == 0 {
		return nethelpers.TableMain
	}
	return nethelpers.RoutingTable(t)
}

// The model's primitives, shared by the steps.

func (s *State) linkIndex(name string) (int, error) {
	for i, l := range s.Links {
		if l.Name == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no link %q on this host", name)
}

func (s *State) needLinks(names ...string) error {
	for _, n := range names {
		if _, err := s.linkIndex(n); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) delAddrs(link string, keep func(Address) bool) {
	s.Addresses = slices.DeleteFunc(s.Addresses, func(a Address) bool { return a.LinkName == link && !keep(a) })
}

func (s *State) addAddr(link string, pf netip.Prefix) error {
	for _, a := range s.Addresses {
		if a.Address.Addr() == pf.Addr() {
			return fmt.Errorf("address %s is already on %s", pf.Addr(), a.LinkName)
		}
	}
	a := Address{Address: pf, LinkName: link, Family: family(pf.Addr())}
	if pf.Addr().Is4() && pf.Bits() < 31 {
		a.Broadcast = broadcast4(pf) // as `ip addr add ... brd +` and netlink.AddrAdd set it
	}
	s.Addresses = append(s.Addresses, a)
	return nil
}

// resolved fills a gateway route's link as the kernel does when none is
// given: the link holding an address on the gateway's subnet.
func (s *State) resolved(r Route) Route {
	if r.OutLinkName != "" || !r.Gateway.IsValid() {
		return r
	}
	for _, a := range s.Addresses {
		if a.Address.Contains(r.Gateway) {
			r.OutLinkName = a.LinkName
			break
		}
	}
	return r
}

// broadcast4 is the last address of an IPv4 prefix.
func broadcast4(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])|(1<<(32-p.Bits())-1))
	return netip.AddrFrom4(b)
}
