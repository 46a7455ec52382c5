package alloc_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/site"
)

// releaseLiveSite starts voter v and site s, then has v's gossip lose s (a
// partition as v sees it, while s still reaches v) and releases s on v, as
// an operator would once v shows s gone. It returns v, s, their
// allocations and the switch that shows s to v again.
func releaseLiveSite(t *testing.T, voters []string) (*testSite, *testSite, []site.Allocation, *atomic.Bool) {
	t.Helper()
	hide := new(atomic.Bool)
	v := startSiteView(t, "v", "", 0, voters, nil, func(name string) bool { return name == "s" && hide.Load() })
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	got := waitAllocated(t, 30*time.Second, v, s)
	waitPhase(t, s, alloc.PhaseAllocated, 10*time.Second)
	hide.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.a.Release(ctx, "s"); err != nil {
		t.Fatalf("operator release of s, which the voter sees gone: %v", err)
	}
	return v, s, got, hide
}

// TestSiteLearnsItsAllocationWasTaken: the voter's gossip loses the live
// site s, an operator releases s on the voter and a new site n receives
// s's values. s must notice within seconds (not at its next 5-minute
// re-verification) and report conflict, naming n, rather than keep using
// prefixes n now holds; it never renumbers.
func TestSiteLearnsItsAllocationWasTaken(t *testing.T) {
	voters := []string{"v"}
	v, s, got, hideS := releaseLiveSite(t, voters)
	n := startSite(t, "n", "", voters, []string{v.gossip()})
	if al := waitAllocated(t, 30*time.Second, n)[0]; al.ASN != got[1].ASN {
		t.Fatalf("n got %v, expected s's released values %v", al, got[1])
	}
	hideS.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	st := s.a.Status()
	for ; st.Phase != alloc.PhaseConflict || !strings.Contains(st.Error, `site "n"`); st = s.a.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("s: phase %s, error %q; want a conflict naming n within 10 s", st.Phase, st.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Allocation == nil || *st.Allocation != got[1] {
		t.Fatalf("s renumbered or dropped its record: %+v", st.Allocation)
	}
}

// TestReleasedLiveSiteRecommitsItsValues: the same release of the live
// site s, but nobody takes its values: s commits them again within
// seconds, so the table never goes on without a site that uses them.
func TestReleasedLiveSiteRecommitsItsValues(t *testing.T) {
	v, s, got, hideS := releaseLiveSite(t, []string{"v"})
	hideS.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		table, err := v.a.Table(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, al := range table {
			if al == got[1] {
				if st := s.a.Status(); st.Phase != alloc.PhaseAllocated {
					t.Fatalf("s committed again but reports %s (%s)", st.Phase, st.Error)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("s's values %v not committed again within 10 s: table %v", got[1], table)
		}
	}
}
