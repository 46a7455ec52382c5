package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
)

// MetaMaxSize is memberlist's limit on node metadata.
const MetaMaxSize = 512

// metaVersion is the first byte of encoded metadata. Fields are
// tag-length-value so a newer agent can add fields older ones skip.
const metaVersion = 1

// Meta is what a site tells its peers through gossip.
type Meta struct {
	Site string `json:"site"`
	// Underlay is the site's underlay (gateway-facing) address.
	Underlay netip.Addr `json:"underlay,omitzero"`
	// BGP is the site's BGP endpoint (TF control node).
	BGP netip.AddrPort `json:"bgp,omitzero"`
	// RPC is the allocator endpoint (raft + allocation RPC); voters only.
	RPC netip.AddrPort `json:"rpc,omitzero"`
	// VoterHash is alloc.VoterSetHash of the site's configured voters.
	VoterHash string `json:"voter_hash,omitempty"`
	// Version is the agent version.
	Version string `json:"version,omitempty"`
	// Alloc is the site's committed allocation (Site equals Meta.Site).
	Alloc *site.Allocation `json:"alloc,omitempty"`
	// Leaving is set just before a graceful leave, so peers can tell
	// "left" from "dead" (memberlist does not expose the difference).
	Leaving bool `json:"leaving,omitempty"`
	// Key is the site's allocator static public key (Curve25519, 32
	// bytes): voters bind it to the site at its first allocation and
	// accept that site's requests only over a channel it authenticates.
	Key []byte `json:"key,omitempty"`
	// Released is, on voters, the raft index of the last release their
	// replica applied (alloc.Allocator.Released): sites re-assert their
	// allocation when it changes.
	Released uint64 `json:"released,omitempty"`
}

const (
	tagSite      = 1
	tagUnderlay  = 2
	tagBGP       = 3
	tagRPC       = 4
	tagVoterHash = 5
	tagVersion   = 6
	tagAlloc     = 7
	tagLeaving   = 8
	tagKey       = 9
	tagReleased  = 10
)

// EncodeMeta encodes m compactly; it fails if the result exceeds MetaMaxSize
// or a string field exceeds 255 bytes.
func EncodeMeta(m Meta) ([]byte, error) {
	b := []byte{metaVersion}
	var err error
	field := func(tag byte, v []byte) {
		if len(v) > 255 {
			err = errors.Join(err, fmt.Errorf("gossip metadata field %d is %d bytes, limit 255", tag, len(v)))
			return
		}
		b = append(b, tag, byte(len(v)))
		b = append(b, v...)
	}
	field(tagSite, []byte(m.Site))
	if m.Underlay.IsValid() {
		field(tagUnderlay, m.Underlay.AsSlice())
	}
	if m.BGP.IsValid() {
		field(tagBGP, appendAddrPort(nil, m.BGP))
	}
	if m.RPC.IsValid() {
		field(tagRPC, appendAddrPort(nil, m.RPC))
	}
	if m.VoterHash != "" {
		field(tagVoterHash, []byte(m.VoterHash))
	}
	if m.Version != "" {
		field(tagVersion, []byte(m.Version))
	}
	if a := m.Alloc; a != nil {
		v := binary.BigEndian.AppendUint32(nil, a.ASN)
		for _, p := range a.Prefixes() {
			v = appendPrefix(v, p)
		}
		field(tagAlloc, v)
	}
	if m.Leaving {
		field(tagLeaving, nil)
	}
	if m.Key != nil {
		if len(m.Key) != site.KeyLen {
			err = errors.Join(err, fmt.Errorf("gossip metadata key is %d bytes, want %d", len(m.Key), site.KeyLen))
		}
		field(tagKey, m.Key)
	}
	if m.Released != 0 {
		field(tagReleased, binary.BigEndian.AppendUint64(nil, m.Released))
	}
	if err != nil {
		return nil, err
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("gossip metadata is %d bytes, memberlist allows %d: shorten the version string", len(b), MetaMaxSize)
	}
	return b, nil
}

// DecodeMeta is the inverse of EncodeMeta. Unknown tags are skipped; any
// malformed input is an error, never a panic.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, errors.New("gossip metadata is empty (peer is not a tfsite agent?)")
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("gossip metadata version %d, this agent understands %d: upgrade the older agent", b[0], metaVersion)
	}
	b = b[1:]
	var allocRaw []byte
	for len(b) > 0 {
		if len(b) < 2 || len(b) < 2+int(b[1]) {
			return Meta{}, errors.New("gossip metadata truncated")
		}
		tag, v := b[0], b[2:2+int(b[1])]
		b = b[2+int(b[1]):]
		var err error
		switch tag {
		case tagSite:
			m.Site = string(v)
		case tagUnderlay:
			var ok bool
			if m.Underlay, ok = netip.AddrFromSlice(v); !ok {
				err = errors.New("bad underlay address")
			}
		case tagBGP:
			m.BGP, err = decodeAddrPort(v)
		case tagRPC:
			m.RPC, err = decodeAddrPort(v)
		case tagVoterHash:
			m.VoterHash = string(v)
		case tagVersion:
			m.Version = string(v)
		case tagAlloc:
			allocRaw = v
		case tagLeaving:
			m.Leaving = true
		case tagReleased:
			if len(v) != 8 {
				err = fmt.Errorf("released index is %d bytes, want 8", len(v))
			} else {
				m.Released = binary.BigEndian.Uint64(v)
			}
		case tagKey:
			if len(v) != site.KeyLen {
				err = fmt.Errorf("key is %d bytes, want %d", len(v), site.KeyLen)
			} else {
				m.Key = append([]byte(nil), v...)
			}
		}
		if err != nil {
			return Meta{}, fmt.Errorf("gossip metadata field %d: %w", tag, err)
		}
	}
	if err := sitename.Validate(m.Site); err != nil {
		return Meta{}, fmt.Errorf("gossip metadata: %w", err)
	}
	if allocRaw != nil {
		a, err := decodeAlloc(allocRaw)
		if err != nil {
			return Meta{}, fmt.Errorf("gossip metadata allocation: %w", err)
		}
		a.Site = m.Site
		m.Alloc = &a
	}
	return m, nil
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	b = append(b, ap.Addr().AsSlice()...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

func decodeAddrPort(v []byte) (netip.AddrPort, error) {
	if len(v) != 6 && len(v) != 18 {
		return netip.AddrPort{}, fmt.Errorf("address+port is %d bytes, want 6 or 18", len(v))
	}
	a, _ := netip.AddrFromSlice(v[:len(v)-2])
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[len(v)-2:])), nil
}

// appendPrefix: family byte (0 none, 4, 6), bits byte, 4 or 16 address bytes.
func appendPrefix(b []byte, p netip.Prefix) []byte {
	switch {
	case !p.IsValid():
		return append(b, 0)
	case p.Addr().Is4():
		b = append(b, 4, byte(p.Bits()))
	default:
		b = append(b, 6, byte(p.Bits()))
	}
	return append(b, p.Addr().AsSlice()...)
}

func decodeAlloc(v []byte) (site.Allocation, error) {
	var a site.Allocation
	if len(v) < 4 {
		return a, errors.New("truncated")
	}
	a.ASN = binary.BigEndian.Uint32(v)
	v = v[4:]
	var ps [3]netip.Prefix
	for i := range ps {
		if len(v) < 1 {
			return a, errors.New("truncated")
		}
		fam := v[0]
		v = v[1:]
		var n int
		switch fam {
		case 0:
			continue
		case 4:
			n = 4
		case 6:
			n = 16
		default:
			return a, fmt.Errorf("bad address family %d", fam)
		}
		if len(v) < 1+n {
			return a, errors.New("truncated")
		}
		bits := int(v[0])
		addr, _ := netip.AddrFromSlice(v[1 : 1+n])
		v = v[1+n:]
		p, err := addr.Prefix(bits)
		if err != nil || p.Addr() != addr {
			return a, fmt.Errorf("bad prefix %s/%d", addr, bits)
		}
		ps[i] = p
	}
	if len(v) != 0 {
		return a, errors.New("trailing bytes")
	}
	a.Pod, a.Service, a.Fabric = ps[0], ps[1], ps[2]
	return a, nil
}
