package underlay

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
)

// ipv4 builds an IPv4 header (ihl words) + 8 payload bytes.
func ipv4Packet(proto byte, ihl int, fragOff uint16, dport uint16) []byte {
	p := make([]byte, ihl*4+8)
	p[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(p[6:], fragOff)
	p[9] = proto
	binary.BigEndian.PutUint16(p[ihl*4+2:], dport)
	return p
}

func TestDHCPClientFilter(t *testing.T) {
	if _, err := dhcpClientFilter(); err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(dhcpClientProgram)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		pass bool
	}{
		{"udp to 68", ipv4Packet(17, 5, 0, 68), true},
		{"udp to 68 with IP options", ipv4Packet(17, 6, 0, 68), true},
		{"udp to 68, don't-fragment set", ipv4Packet(17, 5, 0x4000, 68), true},
		{"udp to 67", ipv4Packet(17, 5, 0, 67), false},
		{"tcp to 68", ipv4Packet(6, 5, 0, 68), false},
		{"later fragment", ipv4Packet(17, 5, 0x0010, 68), false},
	} {
		n, err := vm.Run(tc.pkt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", tc.name, n, tc.pass)
		}
	}
}
