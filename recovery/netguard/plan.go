package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
	"sigs.k8s.io/yaml"

	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/probe"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// Plan is a guarded network change as written in a plan file
// (docs/network-plan.md): operations applied in order, and the probes that
// decide whether the result is healthy.
type Plan struct {
	Description string      `json:"description,omitempty"`
	Operations  []Operation `json:"operations"`
	Probes      Probes      `json:"probes,omitzero"`
}

// Operation is one step of a plan. Op selects which other fields apply.
type Operation struct {
	Op          string   `json:"op"`
	Link        string   `json:"link,omitempty"`
	Target      string   `json:"target,omitempty"`
	Master      *string  `json:"master,omitempty"`
	Kind        string   `json:"kind,omitempty"`
	Peer        string   `json:"peer,omitempty"`
	Address     string   `json:"address,omitempty"`
	Addresses   []string `json:"addresses,omitempty"`
	Destination string   `json:"destination,omitempty"`
	Gateway     string   `json:"gateway,omitempty"`
	Table       uint32   `json:"table,omitempty"`
	Metric      uint32   `json:"metric,omitempty"`
	MTU         uint32   `json:"mtu,omitempty"`
}

// Probes says what must answer for the changed network to count as healthy.
type Probes struct {
	// Gateway is "auto" (the IPv4 default gateway after the change; the
	// default), "none", or an address. It must answer ARP and ICMP echo.
	Gateway string `json:"gateway,omitempty"`
	// Targets must answer: "icmp:ADDR" (echo) or "tcp:ADDR:PORT" (connect).
	Targets []string `json:"targets,omitempty"`
}

// Operation names.
const (
	OpSetAddresses       = "set-addresses"
	OpAddAddress         = "add-address"
	OpDelAddress         = "del-address"
	OpMoveAddresses      = "move-addresses"
	OpReplaceDefaultGW   = "replace-default-route"
	OpAddRoute           = "add-route"
	OpDelRoute           = "del-route"
	OpSetMTU             = "set-mtu"
	OpLinkUp             = "link-up"
	OpLinkDown           = "link-down"
	OpAddLink            = "add-link"
	OpDelLink            = "del-link"
	OpSetMaster          = "set-master"
	defaultGatewayProbe  = "auto"
	maxPlanOps           = 256
	maxInterfaceNameSize = 15
)

var opFields = map[string][]string{
	OpSetAddresses:     {"link", "addresses"},
	OpAddAddress:       {"link", "address"},
	OpDelAddress:       {"link", "address"},
	OpMoveAddresses:    {"link", "target"},
	OpReplaceDefaultGW: {"gateway", "link", "table", "metric"},
	OpAddRoute:         {"destination", "gateway", "link", "table", "metric"},
	OpDelRoute:         {"destination", "gateway", "link", "table", "metric"},
	OpSetMTU:           {"link", "mtu"},
	OpLinkUp:           {"link"},
	OpLinkDown:         {"link"},
	OpAddLink:          {"link", "kind", "peer"},
	OpDelLink:          {"link"},
	OpSetMaster:        {"link", "master"},
}

// ErrInvalidPlan is wrapped by every plan decoding and validation error.
var ErrInvalidPlan = errors.New("invalid network plan")

// DecodePlan parses a YAML (or JSON) plan strictly: unknown fields, unknown
// operations and fields an operation does not take are errors. It checks
// everything that does not depend on the host; Validate checks the rest.
func DecodePlan(data []byte) (*Plan, error) {
	if len(data) > MaxPlanFile {
		return nil, fmt.Errorf("%w: plan is %d bytes, larger than %s, the limit", ErrInvalidPlan, len(data), readlimit.Size(MaxPlanFile))
	}
	var p Plan
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidPlan, oneline.Of(err.Error()))
	}
	// The description is checked here, not in check: a pending record
	// written before the limit must still decode, so it can be reverted.
	errs := checkDescription(p.Description)
	errs = append(errs, p.problems()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPlan, joinOneLine(errs))
	}
	return &p, nil
}

// check validates the plan's syntax, reporting every problem at once.
func (p *Plan) check() error {
	if errs := p.problems(); len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidPlan, joinOneLine(errs))
	}
	return nil
}

// problems lists every syntax problem of the plan.
func (p *Plan) problems() []error {
	var errs []error
	bad := func(i int, format string, a ...any) {
		errs = append(errs, fmt.Errorf("operation %d: "+format, append([]any{i + 1}, a...)...))
	}
	if len(p.Operations) == 0 {
		errs = append(errs, errors.New("no operations: add at least one under `operations`"))
	}
	if len(p.Operations) > maxPlanOps {
		errs = append(errs, fmt.Errorf("%d operations: at most %d", len(p.Operations), maxPlanOps))
	}
	for i, op := range p.Operations {
		allowed, ok := opFields[op.Op]
		if !ok {
			bad(i, "unknown op %q (one of %s)", op.Op, strings.Join(opNames(), ", "))
			continue
		}
		for _, f := range op.setFields() {
			if !slices.Contains(allowed, f) {
				bad(i, "%s does not take %q (it takes %s)", op.Op, f, strings.Join(allowed, ", "))
			}
		}
		for _, err := range op.checkValues() {
			bad(i, "%s: %v", op.Op, err)
		}
	}
	return append(errs, p.Probes.check()...)
}

func (pr Probes) check() []error {
	var errs []error
	if g := pr.Gateway; g != "" && g != defaultGatewayProbe && g != "none" {
		if _, err := netip.ParseAddr(g); err != nil {
			errs = append(errs, fmt.Errorf("probes.gateway %q: want auto, none or an IP address", g))
		}
	}
	for _, t := range pr.Targets {
		if _, err := probe.Parse(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// joinOneLine joins errors with "; " so a report stays one line.
func joinOneLine(errs []error) error {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return errors.New(strings.Join(parts, "; "))
}

func opNames() []string {
	var names []string
	for k := range opFields {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
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

// checkValues checks required fields and the syntax of values.
func (op Operation) checkValues() []error {
	var errs []error
	need := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	prefix := func(field, s string) {
		if _, err := parseHostPrefix(s); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", field, s, err))
		}
	}
	switch op.Op {
	case OpSetAddresses:
		need(checkLinkName("link", op.Link))
		for _, a := range op.Addresses {
			prefix("address", a)
		}
	case OpAddAddress, OpDelAddress:
		need(checkLinkName("link", op.Link))
		if op.Address == "" {
			errs = append(errs, errors.New("address is required (CIDR, e.g. 192.0.2.10/24)"))
		} else {
			prefix("address", op.Address)
		}
	case OpMoveAddresses:
		need(checkLinkName("link", op.Link))
		need(checkLinkName("target", op.Target))
		if op.Link == op.Target && op.Link != "" {
			errs = append(errs, fmt.Errorf("link and target are both %q", op.Link))
		}
	case OpReplaceDefaultGW:
		if _, err := netip.ParseAddr(op.Gateway); err != nil {
			errs = append(errs, fmt.Errorf("gateway %q: want an IP address", op.Gateway))
		}
		if op.Link != "" {
			need(checkLinkName("link", op.Link))
		}
	case OpAddRoute, OpDelRoute:
		if _, err := parseDestination(op.Destination); err != nil {
			errs = append(errs, err)
		}
		if op.Gateway != "" {
			if _, err := netip.ParseAddr(op.Gateway); err != nil {
				errs = append(errs, fmt.Errorf("gateway %q: want an IP address", op.Gateway))
			}
		}
		if op.Link != "" {
			need(checkLinkName("link", op.Link))
		}
		if op.Op == OpAddRoute && op.Gateway == "" && op.Link == "" {
			errs = append(errs, errors.New("needs gateway, link or both"))
		}
	case OpSetMTU:
		need(checkLinkName("link", op.Link))
		if op.MTU < 68 || op.MTU > 65535 {
			errs = append(errs, fmt.Errorf("mtu %d: want 68..65535", op.MTU))
		}
	case OpLinkUp, OpLinkDown, OpDelLink:
		need(checkLinkName("link", op.Link))
	case OpAddLink:
		need(checkLinkName("link", op.Link))
		switch op.Kind {
		case "bridge":
			if op.Peer != "" {
				errs = append(errs, errors.New("peer is only for kind veth"))
			}
		case "veth":
			need(checkLinkName("peer", op.Peer))
		default:
			errs = append(errs, fmt.Errorf("kind %q: want bridge or veth", op.Kind))
		}
	case OpSetMaster:
		need(checkLinkName("link", op.Link))
		if op.Master == nil {
			errs = append(errs, errors.New(`master is required (a bridge's name, or "" to release the link)`))
		} else if *op.Master != "" {
			need(checkLinkName("master", *op.Master))
		}
	}
	return errs
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

// Protected is an address the plan must leave in place on its link, with the
// link up and not enslaved: the out-of-band management address.
type Protected struct {
	Link    string
	Address netip.Prefix
}

// Validate checks the plan against the host state it would be applied to,
// by applying it to a copy of that state: every link, address and route it
// names must exist when its operation runs, it may only delete links it
// created, and it must never take a protected address away. It returns the
// state the plan should produce (kernel-made routes aside) and reports every
// problem at once.
func (p *Plan) Validate(s *State, protected []Protected) (*State, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	sim := s.Clone()
	created := map[string]bool{}
	broken := make([]bool, len(protected))
	var errs []error
	for i, op := range p.Operations {
		if err := simulate(sim, op, created); err != nil {
			errs = append(errs, fmt.Errorf("operation %d (%s): %w", i+1, op.Op, err))
			continue
		}
		for j, pr := range protected {
			if broken[j] {
				continue // reported at the operation that broke it
			}
			if err := checkProtected(sim, pr); err != nil {
				broken[j] = true
				errs = append(errs, fmt.Errorf("operation %d (%s) would %v; management access is kept out of plans (recovery/oob)", i+1, op.Op, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPlan, joinOneLine(errs))
	}
	return sim, nil
}

func checkProtected(s *State, pr Protected) error {
	l, ok := s.Link(pr.Link)
	if !ok {
		return fmt.Errorf("remove management link %s", pr.Link)
	}
	if !l.Up {
		return fmt.Errorf("take management link %s down", pr.Link)
	}
	if l.Master != "" {
		return fmt.Errorf("enslave management link %s to %s", pr.Link, l.Master)
	}
	for _, a := range s.AddressesOn(pr.Link) {
		if a.Address == pr.Address {
			return nil
		}
	}
	return fmt.Errorf("remove management address %s from %s", pr.Address, pr.Link)
}

// CreatedLinks lists the links the plan adds (veth peers included): a revert deletes them.
func (p *Plan) CreatedLinks() []string {
	var out []string
	for _, op := range p.Operations {
		if op.Op == OpAddLink {
			out = append(out, op.Link)
			if op.Peer != "" {
				out = append(out, op.Peer)
			}
		}
	}
	return out
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

// simulate applies op to the model s.
func simulate(s *State, op Operation, created map[string]bool) error {
	link := func(name string) (int, error) {
		for i, l := range s.Links {
			if l.Name == name {
				return i, nil
			}
		}
		return -1, fmt.Errorf("no link %q on this host", name)
	}
	delAddrs := func(name string, keep func(Address) bool) {
		s.Addresses = slices.DeleteFunc(s.Addresses, func(a Address) bool { return a.LinkName == name && !keep(a) })
	}
	addAddr := func(name string, pf netip.Prefix) error {
		for _, a := range s.Addresses {
			if a.Address.Addr() == pf.Addr() {
				return fmt.Errorf("address %s is already on %s", pf.Addr(), a.LinkName)
			}
		}
		s.Addresses = append(s.Addresses, Address{Address: pf, LinkName: name, Family: family(pf.Addr())})
		return nil
	}
	switch op.Op {
	case OpSetAddresses:
		if _, err := link(op.Link); err != nil {
			return err
		}
		delAddrs(op.Link, func(a Address) bool { return a.Address.Addr().IsLinkLocalUnicast() })
		for _, a := range op.Addresses {
			pf, _ := parseHostPrefix(a)
			if err := addAddr(op.Link, pf); err != nil {
				return err
			}
		}
	case OpAddAddress:
		if _, err := link(op.Link); err != nil {
			return err
		}
		pf, _ := parseHostPrefix(op.Address)
		return addAddr(op.Link, pf)
	case OpDelAddress:
		if _, err := link(op.Link); err != nil {
			return err
		}
		pf, _ := parseHostPrefix(op.Address)
		n := len(s.Addresses)
		delAddrs(op.Link, func(a Address) bool { return a.Address != pf })
		if len(s.Addresses) == n {
			return fmt.Errorf("address %s is not on %s", pf, op.Link)
		}
	case OpMoveAddresses:
		if _, err := link(op.Link); err != nil {
			return err
		}
		if _, err := link(op.Target); err != nil {
			return err
		}
		moved := 0
		for i, a := range s.Addresses {
			if a.LinkName == op.Link && !a.Address.Addr().IsLinkLocalUnicast() {
				s.Addresses[i].LinkName = op.Target
				moved++
			}
		}
		if moved == 0 {
			return fmt.Errorf("%s has no addresses to move", op.Link)
		}
		for i, r := range s.Routes {
			if r.OutLinkName == op.Link && !r.Kernel() {
				s.Routes[i].OutLinkName = op.Target
			}
		}
	case OpReplaceDefaultGW:
		gw := netip.MustParseAddr(op.Gateway)
		if op.Link != "" {
			if _, err := link(op.Link); err != nil {
				return err
			}
		}
		t, fam := tableOf(op.Table), family(gw)
		s.Routes = slices.DeleteFunc(s.Routes, func(r Route) bool { return r.Table == t && r.Family == fam && r.IsDefault() })
		s.Routes = append(s.Routes, Route{Family: fam, Gateway: gw, OutLinkName: op.Link, Table: t, Priority: op.Metric,
			Type: nethelpers.TypeUnicast, Protocol: nethelpers.ProtocolStatic})
	case OpAddRoute, OpDelRoute:
		dst, _ := parseDestination(op.Destination)
		var gw netip.Addr
		if op.Gateway != "" {
			gw = netip.MustParseAddr(op.Gateway)
		}
		if op.Link != "" {
			if _, err := link(op.Link); err != nil {
				return err
			}
		}
		fam := nethelpers.FamilyInet4
		if dst.IsValid() {
			fam = family(dst.Addr())
		} else if gw.IsValid() {
			fam = family(gw)
		}
		if gw.IsValid() && dst.IsValid() && family(gw) != fam {
			return fmt.Errorf("gateway %s and destination %s are of different families", gw, dst)
		}
		t := tableOf(op.Table)
		match := func(r Route) bool {
			return r.Table == t && r.Family == fam && r.IsDefault() == !dst.IsValid() && (!dst.IsValid() || r.Destination == dst) &&
				(!gw.IsValid() || r.Gateway == gw) && (op.Link == "" || r.OutLinkName == op.Link) && (op.Metric == 0 || r.Priority == op.Metric)
		}
		if op.Op == OpDelRoute {
			n := len(s.Routes)
			s.Routes = slices.DeleteFunc(s.Routes, match)
			if len(s.Routes) == n {
				return fmt.Errorf("no route %s to delete", op.Destination)
			}
			return nil
		}
		s.Routes = append(s.Routes, Route{Family: fam, Destination: dst, Gateway: gw, OutLinkName: op.Link, Table: t,
			Priority: op.Metric, Type: nethelpers.TypeUnicast, Protocol: nethelpers.ProtocolStatic})
	case OpSetMTU:
		i, err := link(op.Link)
		if err != nil {
			return err
		}
		s.Links[i].MTU = op.MTU
	case OpLinkUp, OpLinkDown:
		i, err := link(op.Link)
		if err != nil {
			return err
		}
		s.Links[i].Up = op.Op == OpLinkUp
	case OpAddLink:
		for _, name := range []string{op.Link, op.Peer} {
			if _, err := link(name); name != "" && err == nil {
				return fmt.Errorf("link %q already exists", name)
			}
		}
		if op.Link == op.Peer {
			return fmt.Errorf("link and peer are both %q", op.Link)
		}
		s.Links = append(s.Links, Link{Name: op.Link, Kind: op.Kind, MTU: 1500})
		created[op.Link] = true
		if op.Peer != "" {
			s.Links = append(s.Links, Link{Name: op.Peer, Kind: op.Kind, MTU: 1500})
			created[op.Peer] = true
		}
	case OpDelLink:
		i, err := link(op.Link)
		if err != nil {
			return err
		}
		if !created[op.Link] {
			return fmt.Errorf("link %s was not added by this plan; a revert could not recreate it", op.Link)
		}
		s.Links = slices.Delete(s.Links, i, i+1)
		delAddrs(op.Link, func(Address) bool { return false })
		s.Routes = slices.DeleteFunc(s.Routes, func(r Route) bool { return r.OutLinkName == op.Link })
		for j := range s.Links {
			if s.Links[j].Master == op.Link {
				s.Links[j].Master = ""
			}
		}
	case OpSetMaster:
		i, err := link(op.Link)
		if err != nil {
			return err
		}
		if m := *op.Master; m != "" {
			j, err := link(m)
			if err != nil {
				return err
			}
			if s.Links[j].Kind != "bridge" {
				return fmt.Errorf("master %s is not a bridge", m)
			}
			if m == op.Link {
				return fmt.Errorf("link %s cannot be its own master", m)
			}
		}
		s.Links[i].Master = *op.Master
	}
	return nil
}

// Duration is a time.Duration that reads and writes as "10s" in JSON.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		if n, err2 := strconv.ParseInt(string(b), 10, 64); err2 == nil {
			*d = Duration(n)
			return nil
		}
		return err
	}
	*d = Duration(v)
	return nil
}
