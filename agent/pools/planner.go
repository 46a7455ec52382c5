package pools

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
)

// u128 is an address as a 128-bit number (IPv4 as its v4-mapped form).
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, borrow)
	return u128{hi, lo}
}

func (x u128) add(y u128) u128 {
	lo, carry := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, carry)
	return u128{hi, lo}
}

func (x u128) shr(n uint) u128 {
	switch {
	case n == 0:
		return x
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{0, x.hi >> (n - 64)}
	}
	return u128{x.hi >> n, x.lo>>n | x.hi<<(64-n)}
}

func (x u128) shl(n uint) u128 {
	switch {
	case n == 0:
		return x
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{x.lo << (n - 64), 0}
	}
	return u128{x.hi<<n | x.lo>>(64-n), x.lo << n}
}

func (x u128) addr(is4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	host := uint(p.Addr().BitLen() - p.Bits())
	ones := u128{^uint64(0), ^uint64(0)}.shr(128 - host)
	return toU128(p.Masked().Addr()).add(ones).addr(p.Addr().Is4())
}

// shift is the number of host bits of a per-site prefix in pool pp.
func (pp PrefixPool) shift() uint { return uint(pp.Supernet.Addr().BitLen() - pp.Length) }

// count is how many per-site prefixes the pool holds.
func (pp PrefixPool) count() uint64 { return uint64(1) << uint(pp.Length-pp.Supernet.Bits()) }

// index of the per-site prefix of pp containing a (a must be in the supernet).
func (pp PrefixPool) index(a netip.Addr) uint64 {
	return toU128(a).sub(toU128(pp.Supernet.Addr())).shr(pp.shift()).lo
}

// nth per-site prefix of pp.
func (pp PrefixPool) nth(i uint64) netip.Prefix {
	a := toU128(pp.Supernet.Addr()).add(u128{0, i}.shl(pp.shift())).addr(pp.Supernet.Addr().Is4())
	return netip.PrefixFrom(a, pp.Length)
}

// contains reports whether p is one of pp's per-site prefixes.
func (pp PrefixPool) contains(p netip.Prefix) bool {
	return p.Bits() == pp.Length && pp.Supernet.Contains(p.Addr()) && p == p.Masked()
}

// Planner picks free values for new sites: the first free ASN and the first
// free prefix of each pool, skipping everything held, reserved or pinned for
// another site. It is built from the committed state at the start of a batch
// and updated as it assigns, so one batch never hands out a value twice.
type Planner struct {
	pools   Pools
	pins    map[string]Pin
	asn     map[uint32]bool
	taken   [3]map[uint64]bool // per pool: per-site prefix indexes overlapping something held
	nextASN int                // range index hint
}

func NewPlanner(pools Pools, held map[string]site.Allocation) *Planner {
	pl := &Planner{pools: pools, pins: map[string]Pin{}, asn: map[uint32]bool{}}
	for i := range pl.taken {
		pl.taken[i] = map[uint64]bool{}
	}
	for _, p := range pools.Pins {
		pl.pins[p.Site] = p
	}
	for _, a := range held {
		ps := a.Prefixes()
		pl.Hold(a.ASN, ps[:]...)
	}
	for _, p := range pools.Pins {
		if _, ok := held[p.Site]; !ok {
			pl.Hold(p.ASN, p.Pod, p.Service, p.Fabric) // kept free for the pinned site
		}
	}
	for _, r := range pools.Reserved.Prefixes {
		pl.Hold(0, r)
	}
	return pl
}

// Hold marks an ASN (0 = none) and prefixes as unavailable.
func (pl *Planner) Hold(asn uint32, ps ...netip.Prefix) {
	if asn != 0 {
		pl.asn[asn] = true
	}
	for _, q := range ps {
		if !q.IsValid() {
			continue
		}
		for i, pp := range pl.pools.prefixPools() {
			if !pp.Supernet.IsValid() || !q.Overlaps(pp.Supernet) {
				continue
			}
			if q.Bits() >= pp.Length {
				pl.taken[i][pp.index(q.Addr())] = true
				continue
			}
			// q is larger than a per-site prefix: mark every index it covers,
			// clipped to the supernet.
			lo, hi := q.Masked().Addr(), lastAddr(q)
			if q.Bits() < pp.Supernet.Bits() {
				lo, hi = pp.Supernet.Addr(), lastAddr(pp.Supernet)
			}
			for j, end := pp.index(lo), pp.index(hi); ; j++ {
				pl.taken[i][j] = true
				if j == end {
					break
				}
			}
		}
	}
}

func (pl *Planner) reservedASN(asn uint32) bool {
	for _, r := range pl.pools.Reserved.ASNs {
		if asn >= r.First && asn <= r.Last {
			return true
		}
	}
	return false
}

// Assign picks values for the named site (pins first) and holds them.
func (pl *Planner) Assign(name string) (site.Allocation, error) {
	a := site.Allocation{Site: name}
	pin := pl.pins[name]
	if pin.ASN != 0 {
		a.ASN = pin.ASN
	} else {
		asn, err := pl.freeASN()
		if err != nil {
			return site.Allocation{}, err
		}
		a.ASN = asn
	}
	pinned := [3]netip.Prefix{pin.Pod, pin.Service, pin.Fabric}
	var ps [3]netip.Prefix
	for i, pp := range pl.pools.prefixPools() {
		if pinned[i].IsValid() {
			ps[i] = pinned[i]
			continue
		}
		p, err := pl.freePrefix(i, pp)
		if err != nil {
			return site.Allocation{}, err
		}
		ps[i] = p
	}
	a.Pod, a.Service, a.Fabric = ps[0], ps[1], ps[2]
	pl.Hold(a.ASN, ps[:]...)
	return a, nil
}

func (pl *Planner) freeASN() (uint32, error) {
	for ri := pl.nextASN; ri < len(pl.pools.ASNs); ri++ {
		r := pl.pools.ASNs[ri]
		for asn := uint64(r.First); asn <= uint64(r.Last); asn++ {
			if !pl.asn[uint32(asn)] && !pl.reservedASN(uint32(asn)) {
				return uint32(asn), nil
			}
		}
		pl.nextASN = ri + 1 // fully used; skip it for the rest of the batch
	}
	return 0, fmt.Errorf("%w: no free ASN in %s", ErrExhausted, asnRanges(pl.pools.ASNs))
}

func (pl *Planner) freePrefix(i int, pp PrefixPool) (netip.Prefix, error) {
	n := pp.count()
	for j := uint64(0); j < n; j++ {
		if !pl.taken[i][j] {
			return pp.nth(j), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: no free /%d left in %s pool %s", ErrExhausted, pp.Length, poolNames[i], pp.Supernet)
}

func asnRanges(rs []ASNRange) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%d-%d", r.First, r.Last)
	}
	return s
}

// inASNPools reports whether asn is in one of the ranges.
func inASNPools(rs []ASNRange, asn uint32) bool {
	for _, r := range rs {
		if asn >= r.First && asn <= r.Last {
			return true
		}
	}
	return false
}

// validatePins checks each pin against the pools, the reserved ranges and
// the other pins.
func (p Pools) validatePins() []error {
	var errs []error
	seen := map[string]bool{}
	for i, pin := range p.Pins {
		if err := sitename.Validate(pin.Site); err != nil {
			errs = append(errs, fmt.Errorf("pools.pins[%d]: %w", i, err))
		}
		if seen[pin.Site] {
			errs = append(errs, fmt.Errorf("pools.pins[%d]: site %q pinned twice", i, pin.Site))
		}
		seen[pin.Site] = true
		if pin.ASN != 0 && len(p.ASNs) > 0 && !inASNPools(p.ASNs, pin.ASN) {
			errs = append(errs, fmt.Errorf("pools.pins[%d] (%s): ASN %d is outside the ASN pools %s", i, pin.Site, pin.ASN, asnRanges(p.ASNs)))
		}
		for k, q := range [3]netip.Prefix{pin.Pod, pin.Service, pin.Fabric} {
			if !q.IsValid() {
				continue
			}
			pp := p.prefixPools()[k]
			if pp.Supernet.IsValid() && !pp.contains(q) {
				errs = append(errs, fmt.Errorf("pools.pins[%d] (%s): %s prefix %s is not a /%d inside %s", i, pin.Site, poolNames[k], q, pp.Length, pp.Supernet))
			}
			for _, r := range p.Reserved.Prefixes {
				if r.IsValid() && q.Overlaps(r) {
					errs = append(errs, fmt.Errorf("pools.pins[%d] (%s): %s prefix %s overlaps reserved %s", i, pin.Site, poolNames[k], q, r))
				}
			}
		}
		for j := 0; j < i; j++ {
			o := p.Pins[j]
			if pin.ASN != 0 && pin.ASN == o.ASN {
				errs = append(errs, fmt.Errorf("pools.pins: sites %q and %q are both pinned to ASN %d", o.Site, pin.Site, pin.ASN))
			}
			for _, q := range [3]netip.Prefix{pin.Pod, pin.Service, pin.Fabric} {
				for _, r := range [3]netip.Prefix{o.Pod, o.Service, o.Fabric} {
					if q.IsValid() && r.IsValid() && q.Overlaps(r) {
						errs = append(errs, fmt.Errorf("pools.pins: site %q prefix %s overlaps site %q prefix %s", pin.Site, q, o.Site, r))
					}
				}
			}
		}
	}
	return errs
}

// checkCapacity reports pools that leave no value at all for an unpinned site.
func (p Pools) checkCapacity() error {
	pl := NewPlanner(p, nil)
	var errs []error
	if _, err := pl.freeASN(); err != nil {
		errs = append(errs, fmt.Errorf("pools: %w (all reserved or pinned)", err))
	}
	for i, pp := range p.prefixPools() {
		if _, err := pl.freePrefix(i, pp); err != nil {
			errs = append(errs, fmt.Errorf("pools: %w (all reserved or pinned)", err))
		}
	}
	return errors.Join(errs...)
}

// Capacity is how many unpinned sites the pools can hold at most.
func (p Pools) Capacity() uint64 {
	var asns uint64
	for _, r := range p.ASNs {
		asns += uint64(r.Last) - uint64(r.First) + 1
	}
	c := asns
	for _, pp := range p.prefixPools() {
		c = min(c, pp.count())
	}
	return c
}
