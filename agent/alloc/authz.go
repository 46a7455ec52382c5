package alloc

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tfsite/tfsite/agent/site"
)

// Who may do what on a voter (docs/allocation.md, "Trust model"). The
// channel (noise.go) proves a peer holds the fleet key and its own static
// key, and names its site; these checks decide on the voter that commits,
// never on the requester's word.

// caller is who sent a request: this agent itself (its allocator or its
// operator, through the local API), or a peer authenticated by the channel.
type caller struct {
	local bool
	site  string
	key   []byte
	addr  netip.AddrPort
}

func (c caller) String() string {
	if c.local {
		return "the local operator"
	}
	return fmt.Sprintf("site %s at %s (key %s)", c.site, c.addr, shortKey(c.key))
}

// memberWait is how long a voter waits for a requester it does not see in
// gossip yet: a site that just joined may reach the voter before its join
// has spread.
const memberWait = 3 * time.Second

// localCaller is this agent as the caller of its own requests.
func (a *Allocator) localCaller() caller {
	return caller{local: true, site: a.cfg.Site, key: a.self.key.Public}
}

// peer returns the gossip view of site.
func (a *Allocator) peer(name string) (site.Peer, bool) {
	if l, ok := a.members.(peerLookup); ok {
		return l.Peer(name)
	}
	for _, p := range a.members.Peers() {
		if p.Site == name {
			return p, true
		}
	}
	return site.Peer{}, false
}

// checkRequester refuses a request about site unless it comes from site
// itself: the channel's site name, an alive gossip member of that name at
// the request's source address, publishing the key the channel proved.
// The key bound in the committed table is checked when the request is
// planned and, deciding, by the state machine.
func (a *Allocator) checkRequester(ctx context.Context, from caller, site string) error {
	if from.local {
		if site != a.cfg.Site {
			return fmt.Errorf("%w: this voter asks only for itself", ErrRefused)
		}
		return nil
	}
	if from.site != site {
		return fmt.Errorf("%w: the request is for site %s but comes over a channel of site %s: a site asks only for itself", ErrRefused, site, from.site)
	}
	deadline := time.Now().Add(memberWait)
	for {
		p, ok := a.peer(site)
		if ok && p.Alive {
			src := from.addr.Addr().Unmap()
			switch {
			case p.Addr.IsValid() && src.IsValid() && p.Addr.Unmap() != src:
				return fmt.Errorf("%w: site %s gossips from %s but this request came from %s: a site must reach voters from the address it gossips from", ErrRefused, site, p.Addr, src)
			case p.Key == nil:
				return fmt.Errorf("%w: site %s publishes no site key in gossip (an older agent?): upgrade it", ErrRefused, site)
			case !sameKey(p.Key, from.key):
				return fmt.Errorf("%w: site %s publishes site key %s in gossip but this node proved key %s: two nodes use one site name, or this one is not site %s", ErrConflict, site, shortKey(p.Key), shortKey(from.key), site)
			}
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: site %s is not an alive member of voter %s's gossip: a site gets an allocation only once it has joined gossip (check its seeds and gossip key)", ErrRefused, site, a.cfg.Site)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkBinding refuses a request for site over a channel whose key is not
// the key the committed table binds to site (when it binds one).
func (a *Allocator) checkBinding(site string, key []byte) error {
	if r, ok := a.fsm.get(site); ok && r.Key != nil && !sameKey(r.Key, key) {
		return fmt.Errorf("%w: site %q is bound to site key %s in the committed table, this request proved %s: its state dir was replaced or copied; if the old node is gone for good run `tfsite site release %s` on a voter", ErrConflict, site, shortKey(r.Key), shortKey(key), site)
	}
	return nil
}

// mayRelease decides a release of site: only the operator of a voter (this
// one, or another voter forwarding its operator's request over a channel
// proving that voter's key), and only of a site that is not alive or
// suspect in this voter's gossip.
func (a *Allocator) mayRelease(site string, from caller) error {
	if !from.local {
		if !slices.Contains(a.cfg.Voters, from.site) {
			return fmt.Errorf("%w: releases are accepted only from the operator of a voter: run `tfsite site release %s` on one of [%s] (asked by %s)", ErrRefused, site, strings.Join(a.cfg.Voters, " "), from)
		}
		if want := a.voterKey(from.site); !sameKey(want, from.key) {
			return fmt.Errorf("%w: %s claims to be voter %s, whose key is %s", ErrRefused, from, from.site, shortKey(want))
		}
	}
	if site == a.cfg.Site {
		return fmt.Errorf("%w: site %s is voter %s itself, which is running: stop it for good and release it from another voter", ErrRefused, site, a.cfg.Site)
	}
	if p, ok := a.peer(site); ok && p.Alive {
		return fmt.Errorf("%w: site %s is alive in voter %s's gossip: stop it for good before releasing its allocation", ErrRefused, site, a.cfg.Site)
	}
	return nil
}

// voterKey is the static key of voter site: bound in the committed table
// (on a voter), else as the site publishes it in gossip; nil if unknown.
func (a *Allocator) voterKey(site string) []byte {
	if site == a.cfg.Site {
		return a.self.key.Public
	}
	if a.fsm != nil {
		if r, ok := a.fsm.get(site); ok && r.Key != nil {
			return r.Key
		}
	}
	if p, ok := a.peer(site); ok {
		return p.Key
	}
	return nil
}

// admitRaft lets a peer speak Raft only as another configured voter, over
// a channel proving that voter's key. It waits (up to memberWait) for a
// voter not yet seen in gossip.
func (a *Allocator) admitRaft(ctx context.Context, p peerInfo) error {
	if p.site == a.cfg.Site || !slices.Contains(a.cfg.Voters, p.site) {
		return fmt.Errorf("%w: site %s is not another voter of [%s]", ErrRefused, p.site, strings.Join(a.cfg.Voters, " "))
	}
	deadline := time.Now().Add(memberWait)
	for {
		want := a.voterKey(p.site)
		if want != nil {
			if !sameKey(want, p.key) {
				return fmt.Errorf("%w: %s proved key %s, voter %s's key is %s", ErrRefused, p.addr, shortKey(p.key), p.site, shortKey(want))
			}
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: voter %s's key is not known yet (not in gossip)", ErrRefused, p.site)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// voterAt names the voter whose endpoint is ap, with its key (for Raft's
// dials, which know only the address).
func (a *Allocator) voterAt(ap netip.AddrPort) (string, []byte, bool) {
	for _, v := range a.cfg.Voters {
		if v == a.cfg.Site {
			continue
		}
		if ep, ok := a.voterEndpoint(v); ok && ep == ap {
			return v, a.voterKey(v), true
		}
	}
	return "", nil, false
}

// refused logs a refused request with who asked (rate-limited, like every
// warning of the endpoint: a key holder must not flood the journal).
func (a *Allocator) refused(op, site string, from caller, err error) {
	a.ep.warn.warn("allocator: request refused", "op", op, "site", site, "by", from.String(), "err", err)
}
