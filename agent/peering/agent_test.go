package peering

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/site"
)

func alloc(asn uint32, pod string) *api.Allocation {
	return &api.Allocation{ASN: asn, Pod: netip.MustParsePrefix(pod),
		Service: netip.MustParsePrefix("10.96.0.0/22"), Fabric: netip.MustParsePrefix("10.64.0.0/22")}
}

func TestFromAgent(t *testing.T) {
	st := api.Status{Site: "alpha", Phase: api.PhaseAllocated, Gossip: "192.168.240.11:7946",
		Allocation: alloc(64512, "10.32.0.0/21")}
	peers := []site.BGPPeer{
		{Site: "gamma", Address: netip.MustParseAddr("192.168.240.13"), ASN: 64514, Pod: netip.MustParsePrefix("10.32.16.0/21")},
		{Site: "beta", Address: netip.MustParseAddr("192.168.240.12"), ASN: 64513, Pod: netip.MustParsePrefix("10.32.8.0/21")},
		// From a peer cache written before pods were listed: imports anything not local.
		{Site: "zeta", Address: netip.MustParseAddr("192.168.240.16"), ASN: 64516},
		{Site: "alpha", Address: netip.MustParseAddr("192.168.240.11"), ASN: 64512, Pod: netip.MustParsePrefix("10.32.0.0/21")},
	}
	local, got, err := FromAgent(st, peers)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.168.240.11")
	if local.Site != "alpha" || local.ASN != 64512 || local.Address != a || local.RouterID != a ||
		!reflect.DeepEqual(local.Announce, []netip.Prefix{netip.MustParsePrefix("10.32.0.0/21")}) || !local.InstallRoutes {
		t.Errorf("local = %+v", local)
	}
	want := []Peer{
		{Name: "beta", Address: netip.MustParseAddr("192.168.240.12"), ASN: 64513, Accept: []netip.Prefix{netip.MustParsePrefix("10.32.8.0/21")}},
		{Name: "gamma", Address: netip.MustParseAddr("192.168.240.13"), ASN: 64514, Accept: []netip.Prefix{netip.MustParsePrefix("10.32.16.0/21")}},
		{Name: "zeta", Address: netip.MustParseAddr("192.168.240.16"), ASN: 64516},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("peers = %+v\nwant %+v", got, want)
	}
	// The result renders and BIRD's parser accepts it.
	conf, err := BIRD(local, got)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "neighbor 192.168.240.12 as 64513;") || !strings.Contains(string(conf), "10.32.16.0/21+") {
		t.Errorf("rendered:\n%s", conf)
	}
	if err := birdParse(t, conf); err != nil {
		t.Error(err)
	}
}

func TestFromAgentRefuses(t *testing.T) {
	_, _, err := FromAgent(api.Status{Site: "alpha", Phase: "requesting", Gossip: "10.0.0.1:7946"}, nil)
	if !errors.Is(err, ErrNotAllocated) || !strings.Contains(err.Error(), "requesting") {
		t.Errorf("no allocation: %v", err)
	}
	_, _, err = FromAgent(api.Status{Site: "alpha", Phase: api.PhaseAllocated, Gossip: "", Allocation: alloc(64512, "10.32.0.0/21")}, nil)
	if err == nil || !strings.Contains(err.Error(), "gossip address") {
		t.Errorf("no gossip address: %v", err)
	}
}
