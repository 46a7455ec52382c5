package alloc

import (
	"context"
	"math/rand/v2"
	"time"
)

// A release is the only way a site's committed entry can vanish or, after
// it, be taken by another site. Every voter publishes the raft index of the
// last release it applied in its gossip metadata (Peer.Released), and every
// site watches it: when a voter's value changes the site re-asserts its
// record through the leader within moments, instead of at its next
// re-verification. The leader confirms the record, commits it again if its
// values are still free (a release of a site the voters' gossip had lost),
// or answers conflict when another site holds them now; the site then
// reports phase conflict and never renumbers. Nothing is held open for it:
// the watch costs no connection, and a release costs each site one request.
// (A restore of an older table lowers the index: sites notice that at
// their next re-verification.)

// watchReleases runs while the allocator runs.
func (a *Allocator) watchReleases(ctx context.Context) {
	wake := a.members.Subscribe()
	seen := map[string]uint64{}
	var published uint64
	for {
		var own <-chan struct{}
		if a.voter {
			own = a.fsm.watch()
			if r := a.fsm.releasedIndex(); r != published {
				published = r
				a.notify() // the agent republishes its gossip metadata
			}
		}
		if a.releasesChanged(seen) {
			a.mu.Lock()
			held := a.confirmed
			a.mu.Unlock()
			if held {
				// Spread the fleet's re-assertions over a retry interval.
				select {
				case <-ctx.Done():
					return
				case <-time.After(rand.N(a.cfg.RetryInterval) + 1):
				}
				a.log.Info("a voter applied a release: re-asserting this site's allocation", "site", a.cfg.Site)
				select {
				case a.recheck <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-wake:
			if !ok {
				wake = nil
			}
		case <-own:
		}
	}
}

// releasesChanged updates seen with every voter's last release index and
// reports whether one grew. Only growth counts: a restarting voter
// publishes less (0, or what its snapshot holds) until its replica catches
// up, and that must not send the fleet re-asserting.
func (a *Allocator) releasesChanged(seen map[string]uint64) bool {
	changed := false
	for _, v := range a.cfg.Voters {
		var r uint64
		if v == a.cfg.Site && a.voter {
			r = a.fsm.releasedIndex()
		} else if p, ok := a.peer(v); ok {
			r = p.Released
		} else {
			continue
		}
		if old, ok := seen[v]; !ok || r > old {
			changed = changed || ok
			seen[v] = r
		}
	}
	return changed
}
