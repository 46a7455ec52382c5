package underlay

import (
	"errors"
	"net"
	"slices"
	"testing"
)

func TestCandidatesSkipAndOrder(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	links := []Link{
		{Name: "lo", Loopback: true, Up: true},
		{Name: "vhost0", MAC: mac, Up: true, HasDefault: true},
		{Name: "pkt0", MAC: mac, Up: true},
		{Name: "tapeth0-1a2b", MAC: mac, Up: true},
		{Name: "vif0", MAC: mac, Up: true},
		{Name: "docker0", MAC: mac, Up: true, Kind: "bridge"},
		{Name: "br0", MAC: mac, Up: true, Kind: "bridge"},
		{Name: "veth1234", MAC: mac, Up: true, Kind: "veth"},
		{Name: "cni0", MAC: mac, Up: true},
		{Name: "flannel.1", MAC: mac, Up: true, Kind: "vxlan"},
		{Name: "tunl0", Up: true, Kind: "ipip"},
		{Name: "mgmt0", MAC: mac, Up: true},
		{Name: "eth2", MAC: mac, Up: false},
		{Name: "wlan-nomac", Up: true},
		{Name: "eth1", MAC: mac, Up: true, Kind: "veth"}, // a namespace's eth1 is a veth: kept
		{Name: "eth0", MAC: mac, Up: true},
		{Name: "ens3", MAC: mac, Up: true, HasDefault: true},
	}
	cands, skipped := candidates(links, []string{"mgmt0"})
	if got, want := linkNames(cands), []string{"ens3", "eth0", "eth1"}; !slices.Equal(got, want) {
		t.Fatalf("candidates = %v, want %v (default-route link first, then by name)", got, want)
	}
	if len(skipped) != len(links)-3 {
		t.Fatalf("skipped %d (%v), want %d", len(skipped), skipped, len(links)-3)
	}
}

func TestPickerIsDeterministic(t *testing.T) {
	l := &Lease{}
	fail := errors.New("x")
	// Candidate 1 answers first: undecided while 0 runs; 0 fails: 1 wins.
	p := newPicker(3)
	if w, all := p.record(1, l, nil); w != -1 || all {
		t.Fatalf("decided %d early", w)
	}
	if w, _ := p.record(0, nil, fail); w != 1 {
		t.Fatalf("winner %d, want 1", w)
	}
	// Candidate 0 answers last: it still wins over 1 and 2.
	p = newPicker(3)
	p.record(2, l, nil)
	p.record(1, l, nil)
	if w, _ := p.record(0, l, nil); w != 0 {
		t.Fatalf("winner %d, want 0", w)
	}
	// All fail.
	p = newPicker(2)
	p.record(1, nil, fail)
	if w, all := p.record(0, nil, fail); w != -1 || !all {
		t.Fatalf("winner %d all %v, want none and all done", w, all)
	}
}
