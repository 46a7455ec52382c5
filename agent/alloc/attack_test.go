package alloc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/site"
)

// TestKeyHolderCannotTakeALiveSite reproduces issue 14's attack: a holder of
// the fleet key (here the member site m, or a client that names itself as
// it likes) connects to the voter's allocator endpoint, releases the live
// site s and allocates a made-up name, which received s's ASN and prefixes.
// Every variant must be refused, and s must keep its entry.
func TestKeyHolderCannotTakeALiveSite(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	m := startSite(t, "m", "", voters, []string{v.gossip()})
	got := waitAllocated(t, 30*time.Second, v, s, m)
	victim := got[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owner := strings.Repeat("ab", 16)
	for _, tc := range []struct {
		name      string
		h         *alloc.KeyHolder
		op, site  string
		claim     *site.Allocation
		wantInMsg string
	}{
		// m, a member, as itself: not a voter's operator.
		{"member releases s", alloc.NewKeyHolder("m", [][]byte{gossipKey}, m.a), "release", "s", nil, "only from the operator of a voter"},
		// ... claiming to be the voter: its key is not v's.
		{"member as the voter releases s", alloc.NewKeyHolder("v", [][]byte{gossipKey}, m.a), "release", "s", nil, "claims to be voter v"},
		// m asks for another name over its own channel.
		{"member allocates ghost", alloc.NewKeyHolder("m", [][]byte{gossipKey}, m.a), "allocate", "ghost", nil, "a site asks only for itself"},
		// A key holder naming itself ghost: not a gossip member.
		{"stranger allocates ghost", alloc.NewKeyHolder("ghost", [][]byte{gossipKey}, nil), "allocate", "ghost", nil, "not an alive member"},
		// A key holder naming itself s, claiming s's values: the member s
		// publishes another key.
		{"stranger claims s", alloc.NewKeyHolder("s", [][]byte{gossipKey}, nil), "allocate", "s", &victim, "publishes site key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			al, code, msg, err := tc.h.Call(ctx, v.a, tc.op, tc.site, owner, tc.claim)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if (code != "refused" && code != "conflict") || al != nil || !strings.Contains(msg, tc.wantInMsg) {
				t.Fatalf("answered code %q msg %q alloc %v; want a refusal naming %q", code, msg, al, tc.wantInMsg)
			}
		})
	}
	// The operator on the voter may not release s either while it is alive.
	if err := v.a.Release(ctx, "s"); !errors.Is(err, alloc.ErrRefused) || !strings.Contains(err.Error(), "alive") {
		t.Fatalf("operator release of the live site s: %v", err)
	}
	table, err := v.a.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range table {
		if a.Site == "ghost" {
			t.Errorf("table holds ghost: %v", a)
		}
		if a == victim {
			found = true
		}
	}
	if !found {
		t.Errorf("the victim's allocation %v is gone from the table %v", victim, table)
	}
	if st := s.a.Status(); st.Phase != alloc.PhaseAllocated {
		t.Errorf("victim s: phase %s (%s)", st.Phase, st.Error)
	}
}
