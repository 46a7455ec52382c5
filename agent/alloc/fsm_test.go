package alloc

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/tfsite/tfsite/agent/site"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func applyCmd(t testing.TB, f *fsm, idx uint64, c command) []result {
	t.Helper()
	b, _ := json.Marshal(c)
	r := f.Apply(&raft.Log{Index: idx, Data: b})
	res, ok := r.([]result)
	if !ok {
		t.Fatalf("apply returned %v", r)
	}
	return res
}

const ownerA, ownerB = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

var (
	allocA = site.Allocation{Site: "a", ASN: 64512, Pod: pfx("10.32.0.0/21"), Service: pfx("10.96.0.0/22"), Fabric: pfx("10.64.0.0/22")}
	allocB = site.Allocation{Site: "b", ASN: 64513, Pod: pfx("10.32.8.0/21"), Service: pfx("10.96.4.0/22"), Fabric: pfx("10.64.4.0/22")}
)

func TestFSMAssignIdempotentDisjointOwned(t *testing.T) {
	f := newFSM()
	res := applyCmd(t, f, 1, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA}, {Owner: ownerB, Alloc: allocB}}})
	if res[0].Code != "" || res[1].Code != "" {
		t.Fatalf("fresh assignments refused: %+v", res)
	}
	// Same site, same owner, same values: idempotent.
	if res := applyCmd(t, f, 2, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA}}}); res[0].Code != "" {
		t.Fatalf("idempotent re-assert refused: %+v", res)
	}
	// Same site, other owner: duplicate site name.
	if res := applyCmd(t, f, 3, command{Op: opAssign, Assign: []assignment{{Owner: ownerB, Alloc: allocA}}}); res[0].Code != codeConflict || !strings.Contains(res[0].Msg, "held by another node") {
		t.Fatalf("second owner accepted: %+v", res)
	}
	// Same site, same owner, different values: never renumbered.
	moved := allocA
	moved.ASN = 64600
	if res := applyCmd(t, f, 4, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: moved}}}); res[0].Code != codeConflict {
		t.Fatalf("renumbering accepted: %+v", res)
	}
	// A new site overlapping an existing one (ASN, then prefix).
	c := site.Allocation{Site: "c", ASN: 64513, Pod: pfx("10.32.16.0/21"), Service: pfx("10.96.8.0/22"), Fabric: pfx("10.64.8.0/22")}
	d := c
	d.Site, d.ASN, d.Fabric = "d", 64520, pfx("10.32.12.0/22") // inside b's pod
	res = applyCmd(t, f, 5, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: c}, {Owner: ownerB, Alloc: d}}})
	if res[0].Code != codeConflict || !strings.Contains(res[0].Msg, "same ASN 64513") || res[1].Code != codeConflict || !strings.Contains(res[1].Msg, "overlaps") {
		t.Fatalf("colliding assignments accepted: %+v", res)
	}
	if err := site.CheckDisjoint(f.table()); err != nil {
		t.Fatal(err)
	}
	if got := f.table(); len(got) != 2 {
		t.Fatalf("table %v", got)
	}
	// Release frees the values for reuse.
	res = applyCmd(t, f, 6, command{Op: opRelease, Release: []string{"b", "zz"}})
	if res[0].Code != "" || res[1].Code != codeUnknownSite {
		t.Fatalf("release: %+v", res)
	}
	if res := applyCmd(t, f, 7, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: c}}}); res[0].Code != "" {
		t.Fatalf("released ASN not reusable: %+v", res)
	}
}

func TestFSMRejectsBadEntries(t *testing.T) {
	f := newFSM()
	if err, ok := f.Apply(&raft.Log{Data: []byte("{")}).(error); !ok || err == nil {
		t.Fatal("garbage entry accepted")
	}
	bad := allocA
	bad.Pod = bad.Service
	res := applyCmd(t, f, 1, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: bad}, {Owner: "", Alloc: allocB}}})
	if res[0].Code != codeInvalid || res[1].Code != codeInvalid {
		t.Fatalf("invalid assignments accepted: %+v", res)
	}
}

// TestFSMBindsSiteKeys: the first assignment binds the site's key (trust
// on first use); afterwards only that key's requests keep the site, an entry
// from before keys is bound by its next re-assertion, and a release clears
// the binding.
func TestFSMBindsSiteKeys(t *testing.T) {
	k1, k2 := key(1), key(2)
	f := newFSM()
	gen := f.watch()
	if res := applyCmd(t, f, 1, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA, Key: k1}, {Owner: ownerB, Alloc: allocB}}}); res[0].Code != "" || res[0].Index != 1 {
		t.Fatalf("first assignment: %+v", res)
	}
	select {
	case <-gen:
	default:
		t.Fatal("watchers not woken by an applied entry")
	}
	for name, k := range map[string][]byte{"other key": k2, "no key": nil} {
		if res := applyCmd(t, f, 2, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA, Key: k}}}); res[0].Code != codeConflict || !strings.Contains(res[0].Msg, "bound to another site key") {
			t.Fatalf("%s kept a bound site: %+v", name, res)
		}
	}
	if res := applyCmd(t, f, 3, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA, Key: k1}}}); res[0].Code != "" || res[0].Index != 1 {
		t.Fatalf("the bound key's re-assertion: %+v", res)
	}
	// b was committed without a key (before keys existed): bound now.
	if res := applyCmd(t, f, 4, command{Op: opAssign, Assign: []assignment{{Owner: ownerB, Alloc: allocB, Key: k2}}}); res[0].Code != "" {
		t.Fatalf("binding an old entry: %+v", res)
	}
	if r, _ := f.get("b"); !sameKey(r.Key, k2) || r.Index != 1 {
		t.Fatalf("old entry after binding: %+v", r)
	}
	bad := k1[:5]
	if res := applyCmd(t, f, 5, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA, Key: bad}}}); res[0].Code != codeInvalid {
		t.Fatalf("short key accepted: %+v", res)
	}
	// The binding survives a snapshot.
	snap, _ := f.Snapshot()
	var sink memSink
	snap.Persist(&sink)
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if r, _ := g.get("a"); !sameKey(r.Key, k1) {
		t.Fatalf("restored %+v", r)
	}
	// A release clears it: another key may take the name afresh. The
	// index of the last release is kept (and survives a snapshot): sites
	// re-assert when a voter publishes a new one.
	if f.releasedIndex() != 0 {
		t.Fatalf("released index %d before any release", f.releasedIndex())
	}
	applyCmd(t, f, 6, command{Op: opRelease, Release: []string{"a"}})
	applyCmd(t, f, 7, command{Op: opRelease, Release: []string{"nobody"}}) // removes nothing
	if f.releasedIndex() != 6 {
		t.Fatalf("released index %d, want 6", f.releasedIndex())
	}
	snap, _ = f.Snapshot()
	sink.Reset()
	snap.Persist(&sink)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil || g.releasedIndex() != 6 {
		t.Fatalf("restored released index %d (%v), want 6", g.releasedIndex(), err)
	}
	if res := applyCmd(t, f, 8, command{Op: opAssign, Assign: []assignment{{Owner: ownerB, Alloc: allocA, Key: k2}}}); res[0].Code != "" {
		t.Fatalf("after the release: %+v", res)
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestFSMSnapshotRoundTripAndRefusesCorrupt(t *testing.T) {
	f := newFSM()
	applyCmd(t, f, 1, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA}, {Owner: ownerB, Alloc: allocB}}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if r, ok := g.get("b"); !ok || r.Alloc != allocB || r.Owner != ownerB {
		t.Fatalf("restored %+v", r)
	}
	// A snapshot holding two colliding sites is refused, not loaded.
	dup := allocB
	dup.Site = "c"
	bad, _ := json.Marshal(snapshotData{Version: 1, Records: []record{{Alloc: allocB, Owner: ownerB}, {Alloc: dup, Owner: ownerA}}})
	if err := g.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Fatalf("colliding snapshot accepted: %v", err)
	}
	if len(g.table()) != 2 {
		t.Fatal("refused snapshot changed the state")
	}
}

func FuzzFSMCommand(f *testing.F) {
	a, _ := json.Marshal(command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA}, {Owner: ownerB, Alloc: allocB}}})
	r, _ := json.Marshal(command{Op: opRelease, Release: []string{"a"}})
	f.Add(a)
	f.Add(r)
	f.Add([]byte(`{"op":"assign","assign":[{"owner":"x","alloc":{"site":"q","asn":1,"pod":"::/0"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := newFSM()
		applyCmd(t, fs, 1, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA}}})
		out := fs.Apply(&raft.Log{Index: 2, Data: data})
		if _, isErr := out.(error); !isErr {
			if _, ok := out.([]result); !ok {
				t.Fatalf("apply returned %T", out)
			}
		}
		// Whatever was applied, the state stays disjoint and valid.
		for _, al := range fs.table() {
			if err := al.Validate(); err != nil {
				t.Fatalf("invalid allocation committed: %v", err)
			}
		}
		if err := site.CheckDisjoint(fs.table()); err != nil {
			t.Fatalf("state not disjoint after %q: %v", data, err)
		}
	})
}

func FuzzSnapshotRestore(f *testing.F) {
	good, _ := json.Marshal(snapshotData{Version: 1, Records: []record{{Alloc: allocA, Owner: ownerA}, {Alloc: allocB, Owner: ownerB}}})
	f.Add(good)
	f.Add([]byte(`{"version":1,"records":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sites, _, err := decodeSnapshot(data)
		if err != nil {
			return
		}
		var all []site.Allocation
		for _, r := range sites {
			all = append(all, r.Alloc)
		}
		if err := site.CheckDisjoint(all); err != nil {
			t.Fatalf("accepted colliding snapshot: %v", err)
		}
	})
}
