package oob

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Link, c.Table, c.Priority, c.Mode = "", 254, 40000, "magic"
	c.Gateway = netip.MustParseAddr("10.9.9.9")
	c.Address = netip.MustParsePrefix("192.168.100.10/24")
	err := c.Validate()
	for _, want := range []string{"link", "not on the management segment", "table 254", "priority 40000", `mode "magic"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %q", err, want)
		}
	}
	c = Default()
	c.Link, c.Address = "eth1", netip.MustParsePrefix("192.168.100.10/24")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestReservationRoundTripAndReserved(t *testing.T) {
	dir := t.TempDir()
	if r, err := Load(dir); r != nil || err != nil {
		t.Fatalf("empty dir: %v %v", r, err)
	}
	if ok, err := Reserved(dir, "eth1"); ok || err != nil {
		t.Fatalf("nothing reserved yet: %v %v", ok, err)
	}
	want := &Reservation{Link: "eth1", Address: netip.MustParsePrefix("192.168.100.10/24"), Table: 200, Priority: 1000, Mode: ModeRule}
	if err := Save(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil || *got != *want {
		t.Fatalf("Load = %+v %v", got, err)
	}
	for link, want := range map[string]bool{"eth1": true, "eth0": false} {
		if ok, err := Reserved(dir, link); ok != want || err != nil {
			t.Errorf("Reserved(%s) = %v %v, want %v", link, ok, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"link":"eth1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Reserved(dir, "eth1"); err == nil || !strings.Contains(err.Error(), "corrupt management reservation") {
		t.Fatalf("corrupt reservation: %v", err)
	}
	good := `{"link":"eth1","address":"192.168.100.10/24","table":200,"priority":1000,"mode":"rule"}`
	if _, err := Decode([]byte(good)); err != nil {
		t.Fatalf("Decode(good): %v", err)
	}
	if _, err := Decode([]byte(good + "}")); err == nil || !strings.Contains(err.Error(), "data after the JSON value") {
		t.Fatalf("reservation with trailing data: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"link":"eth1","address":"192.168.100.10/24","table":200,"priority":1000,"mode":"rule"}`))
	f.Add([]byte(`{"link":"eth1","address":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if r.Link == "" || !r.Address.IsValid() {
			t.Fatalf("accepted incomplete reservation %+v", r)
		}
	})
}
