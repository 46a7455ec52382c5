package netguard

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
)

const takeoverPlan = `
description: emulate TF vhost0 takeover
operations:
  - op: add-link
    link: vhost0
    kind: bridge
  - op: link-up
    link: vhost0
  - op: move-addresses
    link: eth0
    target: vhost0
  - op: set-master
    link: eth0
    master: vhost0
  - op: replace-default-route
    gateway: 10.0.0.20
    link: vhost0
probes:
  gateway: auto
  targets: ["icmp:10.9.0.2", "tcp:10.9.0.2:22"]
`

func hostState() *State {
	return &State{
		Links: []Link{{Name: "lo", Up: true, MTU: 65536}, {Name: "eth0", Up: true, MTU: 1500}, {Name: "eth1", Up: true, MTU: 1500}},
		Addresses: []Address{
			{Address: netip.MustParsePrefix("10.0.0.10/24"), LinkName: "eth0", Family: nethelpers.FamilyInet4},
			{Address: netip.MustParsePrefix("192.168.100.10/24"), LinkName: "eth1", Family: nethelpers.FamilyInet4},
		},
		Routes: []Route{
			{Family: nethelpers.FamilyInet4, Gateway: netip.MustParseAddr("10.0.0.1"), OutLinkName: "eth0", Table: nethelpers.TableMain, Protocol: nethelpers.ProtocolStatic, Type: nethelpers.TypeUnicast},
			{Family: nethelpers.FamilyInet4, Destination: netip.MustParsePrefix("10.0.0.0/24"), OutLinkName: "eth0", Table: nethelpers.TableMain, Protocol: nethelpers.ProtocolKernel, Type: nethelpers.TypeUnicast},
		},
	}
}

var mgmt = []Protected{{Link: "eth1", Address: netip.MustParsePrefix("192.168.100.10/24")}}

func TestDecodeAndValidateTakeoverPlan(t *testing.T) {
	p, err := DecodePlan([]byte(takeoverPlan))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Validate(hostState(), mgmt)
	if err != nil {
		t.Fatal(err)
	}
	if a := got.AddressesOn("vhost0"); len(a) != 1 || a[0].Address.String() != "10.0.0.10/24" {
		t.Fatalf("vhost0 addresses after plan = %v, want 10.0.0.10/24", a)
	}
	if len(got.AddressesOn("eth0")) != 0 {
		t.Fatalf("eth0 keeps addresses: %v", got.AddressesOn("eth0"))
	}
	if gw, dev, _ := got.DefaultGateway(); gw.String() != "10.0.0.20" || dev != "vhost0" {
		t.Fatalf("default route after plan via %s dev %s, want 10.0.0.20 dev vhost0", gw, dev)
	}
	if l, _ := got.Link("eth0"); l.Master != "vhost0" {
		t.Fatalf("eth0 master = %q, want vhost0", l.Master)
	}
	if c := p.CreatedLinks(); len(c) != 1 || c[0] != "vhost0" {
		t.Fatalf("created links %v, want [vhost0]", c)
	}
	// The input state is left alone.
	if len(hostState().Diff(hostState())) != 0 {
		t.Fatal("diff of equal states is not empty")
	}
}

func TestDecodePlanRejects(t *testing.T) {
	cases := map[string]struct{ plan, want string }{
		"not yaml":         {"operations: [", "invalid network plan"},
		"unknown field":    {"operations: [{op: link-up, link: eth0}]\nrollback: never", `unknown field "rollback"`},
		"no operations":    {"description: x", "no operations"},
		"unknown op":       {"operations: [{op: flush-all}]", `unknown op "flush-all"`},
		"field not taken":  {"operations: [{op: link-up, link: eth0, mtu: 9000}]", `link-up does not take "mtu"`},
		"bad address":      {"operations: [{op: add-address, link: eth0, address: 10.0.0.300/24}]", "want an address in CIDR form"},
		"host bits":        {"operations: [{op: add-route, destination: 10.1.0.1/16, link: eth0}]", "did you mean 10.1.0.0/16"},
		"route needs hop":  {"operations: [{op: add-route, destination: 10.1.0.0/16}]", "needs gateway, link or both"},
		"mtu range":        {"operations: [{op: set-mtu, link: eth0, mtu: 20}]", "want 68..65535"},
		"long name":        {"operations: [{op: link-up, link: averyveryverylongname}]", "longer than 15 bytes"},
		"veth needs peer":  {"operations: [{op: add-link, link: v0, kind: veth}]", "peer is required"},
		"bad kind":         {"operations: [{op: add-link, link: v0, kind: vrf}]", `kind "vrf"`},
		"bad target":       {"operations: [{op: link-up, link: eth0}]\nprobes: {targets: [udp:1.2.3.4:5]}", "want icmp:ADDRESS or tcp:ADDRESS:PORT"},
		"bad gateway":      {"operations: [{op: link-up, link: eth0}]\nprobes: {gateway: router}", "want auto, none or an IP address"},
		"master required":  {"operations: [{op: set-master, link: eth0}]", "master is required"},
		"every error once": {"operations: [{op: set-mtu, link: eth0, mtu: 1}, {op: bogus}]", "operation 2: unknown op"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodePlan([]byte(c.plan))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestValidateAgainstHost(t *testing.T) {
	cases := map[string]struct{ plan, want string }{
		"removes mgmt address": {"operations: [{op: set-addresses, link: eth1, addresses: [192.168.100.11/24]}]", "would remove management address 192.168.100.10/24 from eth1"},
		"moves mgmt away":      {"operations: [{op: add-link, link: vhost0, kind: bridge}, {op: move-addresses, link: eth1, target: vhost0}]", "remove management address"},
		"mgmt down":            {"operations: [{op: link-down, link: eth1}]", "take management link eth1 down"},
		"mgmt enslaved":        {"operations: [{op: add-link, link: br0, kind: bridge}, {op: set-master, link: eth1, master: br0}]", "enslave management link eth1"},
		"missing link":         {"operations: [{op: link-up, link: eth7}]", `no link "eth7"`},
		"deletes host link":    {"operations: [{op: del-link, link: eth0}]", "was not added by this plan"},
		"link exists":          {"operations: [{op: add-link, link: eth0, kind: bridge}]", `link "eth0" already exists`},
		"no such route":        {"operations: [{op: del-route, destination: 10.7.0.0/16}]", "no route 10.7.0.0/16"},
		"not a bridge":         {"operations: [{op: set-master, link: eth0, master: eth1}]", "is not a bridge"},
		"duplicate address":    {"operations: [{op: add-address, link: eth0, address: 192.168.100.10/32}]", "already on eth1"},
		"nothing to move":      {"operations: [{op: move-addresses, link: lo, target: eth0}]", "lo has no addresses"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := DecodePlan([]byte(c.plan))
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Validate(hostState(), mgmt)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	// Adding and deleting a link of its own, and routes, is fine.
	p, err := DecodePlan([]byte(`operations:
  - {op: add-link, link: v0, kind: veth, peer: v1}
  - {op: add-route, destination: 10.7.0.0/16, gateway: 10.0.0.1, table: 100}
  - {op: del-route, destination: 10.7.0.0/16, table: 100}
  - {op: del-link, link: v0}
  - {op: set-mtu, link: eth1, mtu: 9000}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Validate(hostState(), mgmt); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodePlan(f *testing.F) {
	f.Add([]byte(takeoverPlan))
	f.Add([]byte("operations: [{op: set-master, link: eth0, master: ''}]"))
	f.Add([]byte(`{"operations":[{"op":"add-route","destination":"default","gateway":"::1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePlan(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		// Whatever decodes must validate without panicking.
		_, _ = p.Validate(hostState(), mgmt)
	})
}
