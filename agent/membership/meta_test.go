package membership

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/agent/site"
)

func fullMeta() Meta {
	return Meta{
		Site:      strings.Repeat("s", 63),
		Underlay:  netip.MustParseAddr("2001:db8::1"),
		BGP:       netip.MustParseAddrPort("[2001:db8::1]:179"),
		RPC:       netip.MustParseAddrPort("192.0.2.1:7947"),
		VoterHash: "0123456789abcdef",
		Version:   strings.Repeat("v", 64),
		Alloc: &site.Allocation{Site: strings.Repeat("s", 63), ASN: 4200000000,
			Pod: netip.MustParsePrefix("fd00:1::/64"), Service: netip.MustParsePrefix("10.96.0.0/22"), Fabric: netip.MustParsePrefix("fd00:2::/64")},
		Key:      bytes.Repeat([]byte{0xab}, site.KeyLen),
		Released: 1 << 40,
	}
}

func TestMetaRoundTripAndSize(t *testing.T) {
	m := fullMeta()
	b, err := EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MetaMaxSize*2/3 {
		t.Fatalf("largest realistic meta is %d bytes; keep well under %d", len(b), MetaMaxSize)
	}
	got, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Site != m.Site || got.Underlay != m.Underlay || got.BGP != m.BGP || got.RPC != m.RPC || got.VoterHash != m.VoterHash || got.Version != m.Version || *got.Alloc != *m.Alloc || !bytes.Equal(got.Key, m.Key) || got.Released != m.Released {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	// Minimal meta: just the site.
	b, _ = EncodeMeta(Meta{Site: "a"})
	if got, err := DecodeMeta(b); err != nil || got.Site != "a" || got.Alloc != nil || got.RPC.IsValid() || got.Key != nil {
		t.Fatalf("minimal: %+v %v", got, err)
	}
}

func TestMetaUnknownTagSkippedAndErrors(t *testing.T) {
	b, _ := EncodeMeta(Meta{Site: "a"})
	b = append(b, 99, 3, 'x', 'y', 'z') // a field from a newer agent
	if m, err := DecodeMeta(b); err != nil || m.Site != "a" {
		t.Fatalf("unknown tag: %v", err)
	}
	for name, in := range map[string][]byte{
		"empty":     nil,
		"version":   {2, 1, 1, 'a'},
		"truncated": {1, 1, 5, 'a'},
		"no site":   {1},
		"bad site":  {1, 1, 1, 'A'},
		"bad rpc":   {1, 1, 1, 'a', 4, 3, 1, 2, 3},
		"short key": {1, 1, 1, 'a', 9, 3, 1, 2, 3},
		"released":  {1, 1, 1, 'a', 10, 3, 1, 2, 3},
	} {
		if _, err := DecodeMeta(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	long := fullMeta()
	long.Version = strings.Repeat("v", 300)
	if _, err := EncodeMeta(long); err == nil {
		t.Fatal("oversized field accepted")
	}
	short := fullMeta()
	short.Key = short.Key[:31]
	if _, err := EncodeMeta(short); err == nil {
		t.Fatal("31-byte key accepted")
	}
}

func FuzzDecodeMeta(f *testing.F) {
	b, _ := EncodeMeta(fullMeta())
	f.Add(b)
	b, _ = EncodeMeta(Meta{Site: "a", RPC: netip.MustParseAddrPort("127.0.0.1:1")})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMeta(data)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same thing.
		b, err := EncodeMeta(m)
		if err != nil {
			if len(data) <= MetaMaxSize {
				t.Fatalf("decoded meta does not re-encode: %v", err)
			}
			return
		}
		m2, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if m2.Site != m.Site || m2.RPC != m.RPC || m2.BGP != m.BGP || m2.Underlay != m.Underlay || (m.Alloc == nil) != (m2.Alloc == nil) || m.Alloc != nil && *m.Alloc != *m2.Alloc || !bytes.Equal(m.Key, m2.Key) || m.Released != m2.Released {
			t.Fatalf("unstable: %+v vs %+v", m, m2)
		}
	})
}
