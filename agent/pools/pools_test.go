package pools

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/agent/site"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestDefaultPoolsValid(t *testing.T) {
	p := DefaultPools()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := p.Capacity(); c != 512 {
		t.Fatalf("default capacity %d, want 512 (pod /21 in a /12)", c)
	}
}

func TestPoolsValidateReportsEverything(t *testing.T) {
	p := Pools{
		ASNs:    []ASNRange{{First: 65000, Last: 64000}, {First: 64512, Last: 65535}},
		Pod:     PrefixPool{Supernet: pfx("10.32.0.0/12"), Length: 8},
		Service: PrefixPool{Supernet: pfx("10.32.0.0/16"), Length: 20},
		Fabric:  PrefixPool{Supernet: netip.MustParsePrefix("10.64.0.1/12"), Length: 22},
		Pins: []Pin{
			{Site: "a", ASN: 1, Pod: pfx("192.168.0.0/21")},
			{Site: "b", ASN: 64600, Service: pfx("10.32.0.0/20")},
			{Site: "c", ASN: 64600},
			{Site: "a"},
		},
		Reserved: Reserved{Prefixes: []netip.Prefix{pfx("10.32.0.0/20")}},
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("bad pools accepted")
	}
	for _, want := range []string{
		"pools.asns[0]: range 65000-64000",
		"includes the reserved ASN 65535",
		"pools.pod.length: /8 does not fit",
		"pools.service.supernet 10.32.0.0/16 overlaps pools.pod.supernet",
		"has host bits set",
		"ASN 1 is outside the ASN pools",
		"pod prefix 192.168.0.0/21 is not a /8 inside 10.32.0.0/12",
		"overlaps reserved 10.32.0.0/20",
		"both pinned to ASN 64600",
		`site "a" pinned twice`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestPoolsExhaustedByReservation(t *testing.T) {
	p := DefaultPools()
	p.Reserved.Prefixes = []netip.Prefix{pfx("10.96.0.0/12")}
	p.Reserved.ASNs = []ASNRange{PrivateASN2}
	err := p.Validate()
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "service pool") || !strings.Contains(err.Error(), "no free ASN") {
		t.Fatalf("want exhausted service pool and ASN, got %v", err)
	}
}

func TestPlannerFirstFreeSkipsHeldReservedPinned(t *testing.T) {
	p := DefaultPools()
	p.Reserved = Reserved{ASNs: []ASNRange{{First: 64512, Last: 64512}}, Prefixes: []netip.Prefix{pfx("10.32.0.0/20")}}
	p.Pins = []Pin{{Site: "pinned", ASN: 64513, Pod: pfx("10.32.16.0/21")}}
	held := map[string]site.Allocation{
		"x": {Site: "x", ASN: 64514, Pod: pfx("10.32.24.0/21"), Service: pfx("10.96.0.0/22"), Fabric: pfx("10.64.0.0/22")},
	}
	pl := NewPlanner(p, held)
	a, err := pl.Assign("new")
	if err != nil {
		t.Fatal(err)
	}
	want := site.Allocation{Site: "new", ASN: 64515, Pod: pfx("10.32.32.0/21"), Service: pfx("10.96.4.0/22"), Fabric: pfx("10.64.4.0/22")}
	if a != want {
		t.Fatalf("got %v\nwant %v", a, want)
	}
	b, _ := pl.Assign("new2")
	pin, _ := pl.Assign("pinned")
	if pin.ASN != 64513 || pin.Pod != pfx("10.32.16.0/21") {
		t.Fatalf("pin not honoured: %v", pin)
	}
	all := []site.Allocation{held["x"], a, b, pin}
	if err := site.CheckDisjoint(all); err != nil {
		t.Fatal(err)
	}
}

func TestPlannerExhaustsExactly(t *testing.T) {
	p := Pools{
		ASNs:    []ASNRange{{First: 64512, Last: 64515}},
		Pod:     PrefixPool{Supernet: pfx("10.0.0.0/24"), Length: 26},
		Service: PrefixPool{Supernet: pfx("10.1.0.0/24"), Length: 25},
		Fabric:  PrefixPool{Supernet: pfx("fd00::/48"), Length: 64},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	pl := NewPlanner(p, nil)
	var all []site.Allocation
	for i := 0; i < 2; i++ {
		a, err := pl.Assign("s" + string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, a)
	}
	if _, err := pl.Assign("sc"); !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "service pool 10.1.0.0/24") {
		t.Fatalf("want service pool exhausted, got %v", err)
	}
	if err := site.CheckDisjoint(all); err != nil {
		t.Fatal(err)
	}
	if all[1].Fabric != pfx("fd00:0:0:1::/64") {
		t.Fatalf("IPv6 carving: got %s", all[1].Fabric)
	}
}

func TestPlannerLargeHeldPrefixMarksRange(t *testing.T) {
	p := DefaultPools()
	// A held prefix larger than a per-site pod prefix (e.g. pinned /19).
	held := map[string]site.Allocation{"big": {Site: "big", ASN: 64512, Pod: pfx("10.32.0.0/19"), Service: pfx("10.96.0.0/22"), Fabric: pfx("10.64.0.0/22")}}
	a, err := NewPlanner(p, held).Assign("n")
	if err != nil {
		t.Fatal(err)
	}
	if a.Pod != pfx("10.32.32.0/21") {
		t.Fatalf("got pod %s, want 10.32.32.0/21", a.Pod)
	}
}

// A range that merely contains a reserved ASN (not only one ending at it) is
// refused: the planner hands out every value of a range.
func TestPoolsRefuseRangesContainingReservedASNs(t *testing.T) {
	for _, tc := range []struct {
		r        ASNRange
		reserved uint32 // 0: valid
	}{
		{ASNRange{First: 65000, Last: 65600}, 65535},
		{ASNRange{First: 65535, Last: 65535}, 65535},
		{ASNRange{First: 23000, Last: 24000}, 23456},
		{ASNRange{First: 4294967000, Last: 4294967295}, 4294967295},
		{ASNRange{First: 64512, Last: 65534}, 0},
		{ASNRange{First: 65536, Last: 65600}, 0},
		{ASNRange{First: 4200000000, Last: 4294967294}, 0},
	} {
		p := DefaultPools()
		p.ASNs = []ASNRange{tc.r}
		err := p.Validate()
		switch {
		case tc.reserved == 0 && err != nil:
			t.Errorf("%d-%d: %v", tc.r.First, tc.r.Last, err)
		case tc.reserved != 0 && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("reserved ASN %d", tc.reserved))):
			t.Errorf("%d-%d: want it refused for ASN %d, got %v", tc.r.First, tc.r.Last, tc.reserved, err)
		}
	}
}
