// Package pools describes what sites are allocated from (ASN ranges and
// prefix supernets, pins, reserved values), validates it, and picks the
// first free values for a new site. It is pure computation: agent/alloc
// commits what the Planner picks through Raft.
package pools

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrExhausted: a pool has no free ASN or prefix left for a new site.
var ErrExhausted = errors.New("allocation pool exhausted")

// ASNRange is an inclusive range of AS numbers.
type ASNRange struct {
	First uint32 `json:"first"`
	Last  uint32 `json:"last"`
}

// PrefixPool is a supernet carved into per-site prefixes of Length bits.
type PrefixPool struct {
	Supernet netip.Prefix `json:"supernet"`
	Length   int          `json:"length"`
}

// Pin fixes some or all of a site's values. Zero fields are allocated
// normally. Pinned values are held back from every other site.
type Pin struct {
	Site    string       `json:"site"`
	ASN     uint32       `json:"asn,omitempty"`
	Pod     netip.Prefix `json:"pod,omitzero"`
	Service netip.Prefix `json:"service,omitzero"`
	Fabric  netip.Prefix `json:"fabric,omitzero"`
}

// Reserved lists values no site is ever given (except through a pin).
type Reserved struct {
	ASNs     []ASNRange     `json:"asns,omitempty"`
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
}

// Pools is what the allocator carves allocations from. Voters must agree on
// it (its hash is compared); the committed log carries concrete values, so a
// mismatch can never produce duplicates, only different choices.
type Pools struct {
	ASNs     []ASNRange `json:"asns"`
	Pod      PrefixPool `json:"pod"`
	Service  PrefixPool `json:"service"`
	Fabric   PrefixPool `json:"fabric"`
	Pins     []Pin      `json:"pins,omitempty"`
	Reserved Reserved   `json:"reserved,omitempty"`
}

// Private ASN ranges (RFC 6996).
var (
	PrivateASN2 = ASNRange{First: 64512, Last: 65534}
	PrivateASN4 = ASNRange{First: 4200000000, Last: 4294967294}
)

// DefaultPools derives the pools from Tungsten Fabric's defaults
// (pod 10.32.0.0/12, service 10.96.0.0/12, IP fabric 10.64.0.0/12, ASN 64512):
// 2-byte private ASNs 64512–65534 (1023 sites); per site a /21 pod prefix
// (2046 pod addresses; 512 sites), a /22 service prefix (1022 ClusterIPs;
// 1024 sites) and a /22 fabric prefix (1024 sites). Capacity with defaults is
// 512 sites (pod-bound); larger fleets widen the supernets or add PrivateASN4.
func DefaultPools() Pools {
	return Pools{
		ASNs:    []ASNRange{PrivateASN2},
		Pod:     PrefixPool{Supernet: netip.MustParsePrefix("10.32.0.0/12"), Length: 21},
		Service: PrefixPool{Supernet: netip.MustParsePrefix("10.96.0.0/12"), Length: 22},
		Fabric:  PrefixPool{Supernet: netip.MustParsePrefix("10.64.0.0/12"), Length: 22},
	}
}

// reservedASNs may never be handed out: AS_TRANS (RFC 6793) and the last
// 2-byte and 4-byte ASNs (RFC 7300).
var reservedASNs = [...]uint32{23456, 65535, 4294967295}

// maxCarveBits bounds Length - Supernet.Bits() so that a pool's prefixes
// can be indexed cheaply.
const maxCarveBits = 20

// Validate reports every problem at once: empty or inverted ASN ranges,
// overlapping ASN ranges, bad supernets or lengths, overlapping supernets,
// pins outside the pools or conflicting with each other or with reserved
// ranges, and pools with no free value at all.
func (p Pools) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(p.ASNs) == 0 {
		add("pools.asns: no ASN range configured (default %d-%d)", PrivateASN2.First, PrivateASN2.Last)
	}
	for i, r := range p.ASNs {
		if r.First == 0 || r.Last < r.First {
			add("pools.asns[%d]: range %d-%d is empty or starts at 0", i, r.First, r.Last)
		}
		for _, asn := range reservedASNs {
			if r.First <= asn && asn <= r.Last {
				add("pools.asns[%d]: range %d-%d includes the reserved ASN %d (never assignable: 23456 AS_TRANS, 65535, 4294967295)", i, r.First, r.Last, asn)
				break
			}
		}
		for j := 0; j < i; j++ {
			if q := p.ASNs[j]; r.First <= q.Last && q.First <= r.Last {
				add("pools.asns[%d] %d-%d overlaps pools.asns[%d] %d-%d", i, r.First, r.Last, j, q.First, q.Last)
			}
		}
	}
	pools := p.prefixPools()
	for i, pp := range pools {
		name := poolNames[i]
		switch {
		case !pp.Supernet.IsValid():
			add("pools.%s.supernet: missing (e.g. %s)", name, DefaultPools().prefixPools()[i].Supernet)
			continue
		case pp.Supernet != pp.Supernet.Masked():
			add("pools.%s.supernet: %s has host bits set (use %s)", name, pp.Supernet, pp.Supernet.Masked())
		}
		if pp.Length < pp.Supernet.Bits() || pp.Length > pp.Supernet.Addr().BitLen() {
			add("pools.%s.length: /%d does not fit in %s (use %d..%d)", name, pp.Length, pp.Supernet, pp.Supernet.Bits(), pp.Supernet.Addr().BitLen())
		} else if pp.Length-pp.Supernet.Bits() > maxCarveBits {
			add("pools.%s.length: /%d carves more than 2^%d prefixes from %s", name, pp.Length, maxCarveBits, pp.Supernet)
		}
		for j := 0; j < i; j++ {
			if q := pools[j]; q.Supernet.IsValid() && pp.Supernet.IsValid() && pp.Supernet.Overlaps(q.Supernet) {
				add("pools.%s.supernet %s overlaps pools.%s.supernet %s", name, pp.Supernet, poolNames[j], q.Supernet)
			}
		}
	}
	for i, r := range p.Reserved.ASNs {
		if r.Last < r.First {
			add("pools.reserved.asns[%d]: range %d-%d is inverted", i, r.First, r.Last)
		}
	}
	for i, r := range p.Reserved.Prefixes {
		if !r.IsValid() {
			add("pools.reserved.prefixes[%d]: invalid prefix", i)
		}
	}
	errs = append(errs, p.validatePins()...)
	if len(errs) == 0 {
		if err := p.checkCapacity(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var poolNames = [3]string{"pod", "service", "fabric"}

func (p Pools) prefixPools() [3]PrefixPool { return [3]PrefixPool{p.Pod, p.Service, p.Fabric} }
