package netguard

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
)

func TestStateJSONKeepsUnnamedEnumValues(t *testing.T) {
	s := hostState()
	s.Routes = append(s.Routes, Route{Family: nethelpers.FamilyInet4, Destination: netip.MustParsePrefix("10.50.0.0/16"),
		Table: 1000, Protocol: 186, Type: nethelpers.TypeUnicast, OutLinkName: "eth1"})
	s.Rules = append(s.Rules, Rule{Family: nethelpers.FamilyInet4, Priority: 1000, Table: 1000, Src: netip.MustParsePrefix("192.168.100.10/32")})
	s.Addresses[0].Broadcast = netip.MustParseAddr("10.0.0.255")
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got State
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if d := s.Diff(&got); len(d) != 0 {
		t.Fatalf("JSON round trip changed the state: %v", d)
	}
}

func TestDiffNamesWhatChanged(t *testing.T) {
	a, b := hostState(), hostState()
	b.Links[1].MTU = 9000
	b.Addresses = b.Addresses[1:]
	b.Routes[0].Gateway = netip.MustParseAddr("10.0.0.20")
	d := strings.Join(a.Diff(b), "\n")
	for _, want := range []string{"link changed: {Name:eth0", "MTU:9000", "address gone: {Address:10.0.0.10/24", "route gone: default via 10.0.0.1", "route added: default via 10.0.0.20"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
}

func TestStrings(t *testing.T) {
	r := Route{Destination: netip.MustParsePrefix("10.1.0.0/16"), Gateway: netip.MustParseAddr("10.0.0.1"), OutLinkName: "eth0", Table: 100, Priority: 5}
	if got := r.String(); got != "10.1.0.0/16 via 10.0.0.1 dev eth0 table 100 metric 5" {
		t.Errorf("route %q", got)
	}
	rule := Rule{Family: nethelpers.FamilyInet6, Priority: 1000, Src: netip.MustParsePrefix("2001:db8::1/128"), Table: 200}
	if got := rule.String(); got != "1000: from 2001:db8::1/128 lookup 200 (inet6)" {
		t.Errorf("rule %q", got)
	}
}
