package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/api"
)

// TestChaos partitions random sites (link down, or an nftables split of the
// fleet into two sides), kill -9s agents and restarts some of them during
// the partition, starts new sites concurrently, heals, and after every round
// asserts: no duplicate ASN and no overlapping prefix in any site's durable
// record or status, every site allocated after the heal, no site renumbered.
// The invariants are also checked while the partition stands.
//
// Short form (CI): 3 rounds. Long form: TFSITE_CHAOS_ROUNDS=200 (make chaos).
// TFSITE_CHAOS_SEED reproduces a run.
func TestChaos(t *testing.T) {
	rounds, maxSites := 3, 6
	if v := os.Getenv("TFSITE_CHAOS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TFSITE_CHAOS_ROUNDS=%q: want a positive number", v)
		}
		rounds, maxSites = n, 10
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TFSITE_CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("TFSITE_CHAOS_SEED=%q: want the unsigned number a failed run printed", v)
		}
	}
	t.Logf("chaos: %d rounds, up to %d sites, TFSITE_CHAOS_SEED=%d", rounds, maxSites, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	f := newFleet(t, []string{"site-1", "site-2", "site-3"})
	for i := 1; i <= 4; i++ {
		f.start(f.addSite(fmt.Sprintf("site-%d", i)))
	}
	f.checkSafety(f.waitConverged(90 * time.Second))

	start := time.Now()
	for r := 1; r <= rounds; r++ {
		running := f.running()
		rng.Shuffle(len(running), func(i, j int) { running[i], running[j] = running[j], running[i] })
		var events []string

		// Partition: isolate one site, or split the fleet into two sides.
		if rng.IntN(2) == 0 {
			p := running[0]
			f.isolate(p)
			events = append(events, "isolate "+p.name)
		} else {
			k := 1 + rng.IntN(len(running)/2)
			a, b := running[:k], running[k:]
			var aIPs, bIPs []string
			for _, p := range a {
				aIPs = append(aIPs, p.ip)
			}
			for _, p := range b {
				bIPs = append(bIPs, p.ip)
			}
			for _, p := range a {
				f.block(p, bIPs)
			}
			for _, p := range b {
				f.block(p, aIPs)
			}
			events = append(events, fmt.Sprintf("split %d|%d", len(a), len(b)))
		}

		// kill -9 one or two sites; restart some at once, the rest after the heal.
		var later []string
		for _, p := range pick(rng, f.running(), 1+rng.IntN(2)) {
			p.kill()
			if rng.IntN(2) == 0 {
				f.start(p)
				events = append(events, "kill+restart "+p.name)
			} else {
				later = append(later, p.name)
				events = append(events, "kill "+p.name)
			}
		}

		// New sites, started at the same moment.
		for n := rng.IntN(3); n > 0 && len(f.sites) < maxSites; n-- {
			p := f.addSite(fmt.Sprintf("site-%d", len(f.sites)+1))
			f.start(p)
			events = append(events, "new "+p.name)
		}

		// Let the partition stand, checking safety while it does.
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		f.checkSafety(f.statuses())

		for _, p := range f.sites {
			f.heal(p)
		}
		for _, name := range later {
			f.start(f.sites[name])
		}
		f.checkSafety(f.waitConverged(120 * time.Second))
		t.Logf("round %d/%d ok (%d sites, %s elapsed): %v", r, rounds, len(f.sites), time.Since(start).Round(time.Second), events)
	}
	if len(f.first) != len(f.sites) {
		t.Fatalf("%d sites, %d with an allocation", len(f.sites), len(f.first))
	}
}

// statuses returns the status of every running site that answers.
func (f *fleet) statuses() map[string]api.Status {
	out := map[string]api.Status{}
	for _, p := range f.running() {
		if st, err := f.status(p); err == nil {
			out[p.name] = st
		}
	}
	return out
}

func pick(rng *rand.Rand, procs []*proc, n int) []*proc {
	rng.Shuffle(len(procs), func(i, j int) { procs[i], procs[j] = procs[j], procs[i] })
	return procs[:min(n, len(procs))]
}
