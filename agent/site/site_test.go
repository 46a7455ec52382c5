package site

import (
	"net/netip"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestAllocationValidate(t *testing.T) {
	bad := Allocation{Site: "a", Pod: pfx("10.32.0.1/21"), Service: pfx("10.32.0.0/16")}
	err := bad.Validate()
	for _, want := range []string{"asn is 0", "host bits", "fabric prefix missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	overlap := Allocation{Site: "a", ASN: 64512, Pod: pfx("10.32.0.0/21"), Service: pfx("10.32.0.0/22"), Fabric: pfx("10.64.0.0/22")}
	if err := overlap.Validate(); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("pod and service overlapping: want overlap, got %v", err)
	}
	good := Allocation{Site: "a", ASN: 64512, Pod: pfx("10.32.0.0/21"), Service: pfx("10.96.0.0/22"), Fabric: pfx("10.64.0.0/22")}
	if err := good.Validate(); err != nil {
		t.Errorf("valid allocation refused: %v", err)
	}
	if (Allocation{}).IsZero() != true || good.IsZero() {
		t.Error("IsZero")
	}
	if bad := (Allocation{Site: "Bad Name", ASN: 1, Pod: pfx("10.32.0.0/21"), Service: pfx("10.96.0.0/22"), Fabric: pfx("10.64.0.0/22")}); bad.Validate() == nil {
		t.Error("invalid site name accepted")
	}
}

func TestCheckDisjoint(t *testing.T) {
	a := Allocation{Site: "a", ASN: 64512, Pod: pfx("10.32.0.0/21"), Service: pfx("10.96.0.0/22"), Fabric: pfx("10.64.0.0/22")}
	b := Allocation{Site: "b", ASN: 64513, Pod: pfx("10.32.8.0/21"), Service: pfx("10.96.4.0/22"), Fabric: pfx("10.64.4.0/22")}
	if err := CheckDisjoint([]Allocation{a, b, a}); err != nil {
		t.Fatalf("disjoint set (with a repeated identical entry) reported: %v", err)
	}
	c := b
	c.Site, c.ASN = "c", 64512
	c.Fabric = pfx("10.32.4.0/24") // inside a's pod
	err := CheckDisjoint([]Allocation{a, b, c})
	if err == nil || !strings.Contains(err.Error(), "duplicate ASN 64512") || !strings.Contains(err.Error(), "10.32.4.0/24") {
		t.Fatalf("want duplicate ASN and overlap reported, got %v", err)
	}
	a2 := a
	a2.ASN = 64999
	if err := CheckDisjoint([]Allocation{a, a2}); err == nil || !strings.Contains(err.Error(), "held twice") {
		t.Fatalf("want site held twice, got %v", err)
	}
}
