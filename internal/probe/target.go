// Package probe names the reachability targets a network change is checked
// against ("icmp:ADDR", "tcp:ADDR:PORT"). It is a leaf so that configuration
// validation and the network guard parse targets the same way.
package probe

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Target is a reachability probe target.
type Target struct {
	Proto string         // "icmp" or "tcp"
	Addr  netip.AddrPort // port 0 for icmp
}

func (t Target) String() string {
	if t.Proto == "icmp" {
		return "icmp:" + t.Addr.Addr().String()
	}
	return "tcp:" + t.Addr.String()
}

// Parse parses "icmp:ADDR" or "tcp:ADDR:PORT" (IPv6 as tcp:[ADDR]:PORT).
func Parse(s string) (Target, error) {
	proto, rest, ok := strings.Cut(s, ":")
	switch {
	case ok && proto == "icmp":
		a, err := netip.ParseAddr(rest)
		if err == nil && !a.Is4() {
			err = errors.New("only IPv4 echo is probed")
		}
		if err != nil {
			return Target{}, fmt.Errorf("probe target %q: want icmp:IPv4-ADDRESS: %v", s, err)
		}
		return Target{Proto: "icmp", Addr: netip.AddrPortFrom(a, 0)}, nil
	case ok && proto == "tcp":
		ap, err := netip.ParseAddrPort(rest)
		if err == nil && ap.Port() == 0 {
			err = errors.New("port 0")
		}
		if err != nil {
			return Target{}, fmt.Errorf("probe target %q: want tcp:ADDRESS:PORT: %v", s, err)
		}
		return Target{Proto: "tcp", Addr: ap}, nil
	}
	return Target{}, fmt.Errorf("probe target %q: want icmp:ADDRESS or tcp:ADDRESS:PORT", s)
}
