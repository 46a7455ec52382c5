// Package netguard makes network changes that revert themselves: it snapshots
// links, addresses, routes and policy rules, records the snapshot and the
// pending change durably, applies the change, probes reachability, and either
// confirms the change (healthy through a settle window) or restores the
// snapshot (not healthy by the deadline, or the process died meanwhile).
package netguard

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
)

// State is the part of a host's network configuration that netguard
// snapshots and restores. Its element types follow the field names and enums
// of Talos's resources/network specs (LinkSpecSpec, AddressSpecSpec,
// RouteSpecSpec, RoutingRuleSpecSpec); see docs/network-plan.md for why they
// are not those types themselves.
type State struct {
	Links     []Link    `json:"links"`
	Addresses []Address `json:"addresses"`
	Routes    []Route   `json:"routes"`
	Rules     []Rule    `json:"rules"`
}

// Link mirrors the restorable part of Talos's LinkSpecSpec.
type Link struct {
	Name   string `json:"name"`
	Kind   string `json:"kind,omitempty"` // "bridge", "veth", ... ("" for a physical device)
	Up     bool   `json:"up"`
	MTU    uint32 `json:"mtu"`
	Master string `json:"master,omitempty"`
	// Peer is the other end of a veth pair a plan adds (Converge creates
	// the pair from it); snapshots leave it empty.
	Peer string `json:"peer,omitempty"`
}

// Address mirrors Talos's AddressSpecSpec.
type Address struct {
	Address  netip.Prefix      `json:"address"`
	LinkName string            `json:"linkName"`
	Family   nethelpers.Family `json:"family"`
	Scope    nethelpers.Scope  `json:"scope"`
	// Broadcast is the IPv4 broadcast address; unset when there is none
	// (Talos's spec has no such field; a restore must keep it as it was).
	Broadcast netip.Addr `json:"broadcast,omitzero"`
}

// Route mirrors Talos's RouteSpecSpec. An unset Destination is the default route.
type Route struct {
	Family      nethelpers.Family        `json:"family"`
	Destination netip.Prefix             `json:"dst,omitzero"`
	Source      netip.Addr               `json:"src,omitzero"`
	Gateway     netip.Addr               `json:"gateway,omitzero"`
	OutLinkName string                   `json:"outLinkName,omitempty"`
	Table       nethelpers.RoutingTable  `json:"table"`
	Priority    uint32                   `json:"priority,omitempty"`
	Scope       nethelpers.Scope         `json:"scope"`
	Type        nethelpers.RouteType     `json:"type"`
	Protocol    nethelpers.RouteProtocol `json:"protocol"`
}

// Rule mirrors Talos's RoutingRuleSpecSpec.
type Rule struct {
	Family   nethelpers.Family            `json:"family"`
	Src      netip.Prefix                 `json:"src,omitzero"`
	Dst      netip.Prefix                 `json:"dst,omitzero"`
	Table    nethelpers.RoutingTable      `json:"table"`
	Priority uint32                       `json:"priority"`
	Action   nethelpers.RoutingRuleAction `json:"action"`
	IIFName  string                       `json:"iifName,omitempty"`
	OIFName  string                       `json:"oifName,omitempty"`
	FwMark   uint32                       `json:"fwMark,omitempty"`
	FwMask   uint32                       `json:"fwMask,omitempty"`
}

// The nethelpers enums marshal as names and refuse numbers they have no
// name for (table 1000, a routing daemon's protocol), so the journal stores
// them as plain numbers through these wire forms.
type addressWire struct {
	Address   netip.Prefix `json:"address"`
	LinkName  string       `json:"linkName"`
	Family    uint8        `json:"family"`
	Scope     uint8        `json:"scope"`
	Broadcast netip.Addr   `json:"broadcast,omitzero"`
}

// MarshalJSON implements json.Marshaler.
func (a Address) MarshalJSON() ([]byte, error) {
	return json.Marshal(addressWire{a.Address, a.LinkName, uint8(a.Family), uint8(a.Scope), a.Broadcast})
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *Address) UnmarshalJSON(b []byte) error {
	var w addressWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*a = Address{w.Address, w.LinkName, nethelpers.Family(w.Family), nethelpers.Scope(w.Scope), w.Broadcast}
	return nil
}

type routeWire struct {
	Family      uint8        `json:"family"`
	Destination netip.Prefix `json:"dst,omitzero"`
	Source      netip.Addr   `json:"src,omitzero"`
	Gateway     netip.Addr   `json:"gateway,omitzero"`
	OutLinkName string       `json:"outLinkName,omitempty"`
	Table       uint32       `json:"table"`
	Priority    uint32       `json:"priority,omitempty"`
	Scope       uint8        `json:"scope"`
	Type        uint8        `json:"type"`
	Protocol    uint8        `json:"protocol"`
}

// MarshalJSON implements json.Marshaler.
func (r Route) MarshalJSON() ([]byte, error) {
	return json.Marshal(routeWire{uint8(r.Family), r.Destination, r.Source, r.Gateway, r.OutLinkName,
		uint32(r.Table), r.Priority, uint8(r.Scope), uint8(r.Type), uint8(r.Protocol)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *Route) UnmarshalJSON(b []byte) error {
	var w routeWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Route{nethelpers.Family(w.Family), w.Destination, w.Source, w.Gateway, w.OutLinkName,
		nethelpers.RoutingTable(w.Table), w.Priority, nethelpers.Scope(w.Scope), nethelpers.RouteType(w.Type), nethelpers.RouteProtocol(w.Protocol)}
	return nil
}

type ruleWire struct {
	Family   uint8        `json:"family"`
	Src      netip.Prefix `json:"src,omitzero"`
	Dst      netip.Prefix `json:"dst,omitzero"`
	Table    uint32       `json:"table"`
	Priority uint32       `json:"priority"`
	Action   uint8        `json:"action"`
	IIFName  string       `json:"iifName,omitempty"`
	OIFName  string       `json:"oifName,omitempty"`
	FwMark   uint32       `json:"fwMark,omitempty"`
	FwMask   uint32       `json:"fwMask,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (r Rule) MarshalJSON() ([]byte, error) {
	return json.Marshal(ruleWire{uint8(r.Family), r.Src, r.Dst, uint32(r.Table), r.Priority, uint8(r.Action), r.IIFName, r.OIFName, r.FwMark, r.FwMask})
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var w ruleWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Rule{nethelpers.Family(w.Family), w.Src, w.Dst, nethelpers.RoutingTable(w.Table), w.Priority,
		nethelpers.RoutingRuleAction(w.Action), w.IIFName, w.OIFName, w.FwMark, w.FwMask}
	return nil
}

// IsDefault reports whether r is a default route (no destination or /0).
func (r Route) IsDefault() bool { return !r.Destination.IsValid() || r.Destination.Bits() == 0 }

// Kernel reports whether the kernel made r by itself (proto kernel: the
// prefix route of an address); such routes come back with their address.
func (r Route) Kernel() bool { return r.Protocol == nethelpers.ProtocolKernel }

// Key identifies a route for comparison: table, destination, gateway, device, metric.
func (r Route) Key() string {
	dst := "default"
	if !r.IsDefault() {
		dst = r.Destination.String()
	}
	return fmt.Sprintf("%d|%d|%s|%s|%s|%d|%d", r.Family, r.Table, dst, r.Gateway, r.OutLinkName, r.Priority, r.Type)
}

func (r Route) String() string {
	dst := "default"
	if !r.IsDefault() {
		dst = r.Destination.String()
	}
	s := dst
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	if r.OutLinkName != "" {
		s += " dev " + r.OutLinkName
	}
	if r.Table != nethelpers.TableMain {
		s += fmt.Sprintf(" table %d", r.Table)
	}
	if r.Priority != 0 {
		s += fmt.Sprintf(" metric %d", r.Priority)
	}
	return s
}

// Key identifies a rule for comparison.
func (r Rule) Key() string {
	return fmt.Sprintf("%d|%d|%s|%s|%d|%d|%s|%s|%d/%d", r.Family, r.Priority, r.Src, r.Dst, r.Table, r.Action, r.IIFName, r.OIFName, r.FwMark, r.FwMask)
}

func (r Rule) String() string {
	s := fmt.Sprintf("%d:", r.Priority)
	if r.Src.IsValid() {
		s += " from " + r.Src.String()
	} else {
		s += " from all"
	}
	if r.Dst.IsValid() {
		s += " to " + r.Dst.String()
	}
	if r.IIFName != "" {
		s += " iif " + r.IIFName
	}
	if r.OIFName != "" {
		s += " oif " + r.OIFName
	}
	if r.FwMark != 0 {
		s += fmt.Sprintf(" fwmark %#x", r.FwMark)
	}
	s += fmt.Sprintf(" lookup %d", r.Table)
	if r.Family == nethelpers.FamilyInet6 {
		s += " (inet6)"
	}
	return s
}

// Link returns the link named name.
func (s *State) Link(name string) (Link, bool) {
	for _, l := range s.Links {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// AddressesOn returns the addresses on link name.
func (s *State) AddressesOn(name string) []Address {
	var out []Address
	for _, a := range s.Addresses {
		if a.LinkName == name {
			out = append(out, a)
		}
	}
	return out
}

// DefaultGateway returns the gateway of the main table's first IPv4 default route.
func (s *State) DefaultGateway() (netip.Addr, string, bool) {
	for _, r := range s.Routes {
		if r.Family == nethelpers.FamilyInet4 && r.Table == nethelpers.TableMain && r.IsDefault() && r.Gateway.IsValid() {
			return r.Gateway, r.OutLinkName, true
		}
	}
	return netip.Addr{}, "", false
}

// Sort puts every list in a canonical order so that two snapshots of the
// same configuration compare equal.
func (s *State) Sort() {
	slices.SortFunc(s.Links, func(a, b Link) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Addresses, func(a, b Address) int {
		return cmp.Or(cmp.Compare(a.LinkName, b.LinkName), cmp.Compare(a.Address.String(), b.Address.String()))
	})
	slices.SortFunc(s.Routes, func(a, b Route) int { return cmp.Compare(a.Key(), b.Key()) })
	slices.SortFunc(s.Rules, func(a, b Rule) int { return cmp.Compare(a.Key(), b.Key()) })
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	return &State{
		Links:     slices.Clone(s.Links),
		Addresses: slices.Clone(s.Addresses),
		Routes:    slices.Clone(s.Routes),
		Rules:     slices.Clone(s.Rules),
	}
}

// Diff lists, one line each, how other differs from s (empty when equal).
func (s *State) Diff(other *State) []string {
	a, b := s.Clone(), other.Clone()
	a.Sort()
	b.Sort()
	var out []string
	out = append(out, diffKeyed("link", a.Links, b.Links, func(l Link) string { return l.Name }, func(l Link) string { return fmt.Sprintf("%+v", l) })...)
	out = append(out, diffKeyed("address", a.Addresses, b.Addresses, func(x Address) string { return x.LinkName + " " + x.Address.String() }, func(x Address) string { return fmt.Sprintf("%+v", x) })...)
	out = append(out, diffKeyed("route", a.Routes, b.Routes, Route.Key, func(r Route) string { return fmt.Sprintf("%+v", r) })...)
	out = append(out, diffKeyed("rule", a.Rules, b.Rules, Rule.Key, func(r Rule) string { return fmt.Sprintf("%+v", r) })...)
	return out
}

func diffKeyed[T any](what string, a, b []T, key, full func(T) string) []string {
	am, bm := map[string]string{}, map[string]string{}
	for _, x := range a {
		am[key(x)] = full(x)
	}
	for _, x := range b {
		bm[key(x)] = full(x)
	}
	var out []string
	for k, v := range am {
		w, ok := bm[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s gone: %s", what, v))
		case v != w:
			out = append(out, fmt.Sprintf("%s changed: %s -> %s", what, v, w))
		}
	}
	for k, v := range bm {
		if _, ok := am[k]; !ok {
			out = append(out, fmt.Sprintf("%s added: %s", what, v))
		}
	}
	slices.Sort(out)
	return out
}
