package alloc

// The leader's side: requests handled, batched by one worker, planned and
// committed through raft.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/tfsite/tfsite/agent/pools"
	"github.com/tfsite/tfsite/agent/site"
)

// handle serves one request on a voter, from the network or from this agent
// (from says which).
func (a *Allocator) handle(ctx context.Context, req request, from caller) response {
	if req.VoterHash != a.hash {
		return response{Code: codeVoterMismatch, Msg: fmt.Sprintf("voter %s is configured with voters [%s] (hash %s) but site %s with hash %s: make the voters list identical on every site", a.cfg.Site, strings.Join(a.cfg.Voters, " "), a.hash, req.Site, req.VoterHash)}
	}
	if a.raft.State() != raft.Leader {
		_, id := a.raft.LeaderWithID()
		if id == "" {
			return response{Code: codeNoQuorum, Msg: fmt.Sprintf("voter %s knows no leader (election in progress or no majority of [%s] reachable)", a.cfg.Site, strings.Join(a.cfg.Voters, " "))}
		}
		resp := response{Code: codeNotLeader, Leader: string(id), LeaderKey: a.voterKey(string(id))}
		if ep, ok := a.voterEndpoint(string(id)); ok {
			resp.LeaderEndpoint = ep
		}
		return resp
	}
	switch req.Op {
	case rpcTable:
		if err := a.readBarrier(); err != nil {
			return response{Code: codeNoQuorum, Msg: fmt.Sprintf("leader %s: %v", a.cfg.Site, err)}
		}
		return response{Table: a.fsm.table()}
	case rpcRelease:
		if err := a.mayRelease(req.Site, from); err != nil {
			a.refused("release", req.Site, from, err)
			return response{Code: codeOf(err), Msg: err.Error()}
		}
	case rpcAllocate:
		if err := a.checkRequester(ctx, from, req.Site); err != nil {
			a.refused("allocate", req.Site, from, err)
			return response{Code: codeOf(err), Msg: err.Error()}
		}
	}
	p := &pending{req: req, from: from, resp: make(chan response, 1)}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	select {
	case a.reqs <- p:
	case <-ctx.Done():
		return response{Code: codeNoQuorum, Msg: "leader busy"}
	}
	select {
	case r := <-p.resp:
		return r
	case <-ctx.Done():
		return response{Code: codeNoQuorum, Msg: fmt.Sprintf("leader %s did not commit in time", a.cfg.Site)}
	}
}

// worker is the leader's single writer: it batches pending requests into
// one raft entry each round, so the planner always sees every earlier
// assignment and one commit serves many sites.
func (a *Allocator) worker(ctx context.Context) {
	var carry []*pending
	var barrierTerm uint64
	for {
		batch := carry
		carry = nil
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case p := <-a.reqs:
				batch = append(batch, p)
			}
		}
	drain:
		for len(batch) < 512 {
			select {
			case p := <-a.reqs:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		if ctx.Err() != nil {
			for _, p := range batch {
				p.resp <- response{Code: codeNoQuorum, Msg: "voter shutting down"}
			}
			return
		}
		carry = a.process(batch, &barrierTerm)
	}
}

func (a *Allocator) process(batch []*pending, barrierTerm *uint64) (carry []*pending) {
	fail := func(ps []*pending, r response) {
		for _, p := range ps {
			p.resp <- r
		}
	}
	if a.raft.State() != raft.Leader {
		_, id := a.raft.LeaderWithID()
		fail(batch, response{Code: codeNotLeader, Leader: string(id)})
		return nil
	}
	if term := a.raft.CurrentTerm(); term != *barrierTerm {
		// New term: make sure every committed entry is applied before
		// planning from the state machine.
		if err := a.raft.Barrier(a.cfg.RequestTimeout).Error(); err != nil {
			fail(batch, response{Code: codeNoQuorum, Msg: fmt.Sprintf("leader %s: %v", a.cfg.Site, err)})
			return nil
		}
		*barrierTerm = term
	}
	// Releases first, in their own entry.
	var releases, claims, fresh []*pending
	for _, p := range batch {
		switch {
		case p.req.Op == rpcRelease:
			releases = append(releases, p)
		case p.req.Claim != nil:
			claims = append(claims, p)
		default:
			fresh = append(fresh, p)
		}
	}
	if len(releases) > 0 {
		cmd := command{Op: opRelease}
		for _, p := range releases {
			cmd.Release = append(cmd.Release, p.req.Site)
		}
		res, err := a.apply(cmd)
		for i, p := range releases {
			if err != nil {
				p.resp <- response{Code: codeOf(err), Msg: err.Error()}
			} else {
				p.resp <- response{Code: res[i].Code, Msg: res[i].Msg}
				if res[i].Code == "" {
					a.log.Warn("allocation released", "site", p.req.Site, "allocation", res[i].Alloc.String(), "by", p.from.String())
				}
			}
		}
	}
	pl := pools.NewPlanner(a.cfg.Pools, a.fsm.held())
	cmd := command{Op: opAssign}
	var inCmd []*pending
	inBatch := map[string]bool{}
	for _, p := range append(claims, fresh...) {
		name := p.req.Site
		if inBatch[name] {
			carry = append(carry, p) // same site twice: next round answers from state
			continue
		}
		inBatch[name] = true
		if err := a.checkBinding(name, p.from.key); err != nil {
			p.resp <- response{Code: codeOf(err), Msg: err.Error()}
			continue
		}
		var al site.Allocation
		r, held := a.fsm.get(name)
		switch {
		case held && r.Owner != p.req.Owner:
			p.resp <- response{Code: codeConflict, Msg: fmt.Sprintf("site %q is held by another node (owner %s, requester %s): two nodes use one site name, or the site was reinstalled without its state dir; if the old node is gone for good run `tfsite site release %s` on a voter", name, short(r.Owner), short(p.req.Owner), name)}
			continue
		case held && p.req.Claim != nil && *p.req.Claim != r.Alloc:
			p.resp <- response{Code: codeConflict, Msg: fmt.Sprintf("site %q holds %v in the committed state but its record says %v", name, r.Alloc, *p.req.Claim)}
			continue
		case held && r.Key != nil:
			al := r.Alloc
			p.resp <- response{Alloc: &al, Index: r.Index}
			continue
		case held:
			// Held from before site keys: commit the same values with the
			// key, which binds it.
			al = r.Alloc
		case p.req.Claim != nil:
			al = *p.req.Claim
			ps := al.Prefixes()
			pl.Hold(al.ASN, ps[:]...)
		default:
			var err error
			if al, err = pl.Assign(name); err != nil {
				p.resp <- response{Code: codeOf(err), Msg: err.Error()}
				continue
			}
		}
		cmd.Assign = append(cmd.Assign, assignment{Owner: p.req.Owner, Alloc: al, Key: p.from.key})
		inCmd = append(inCmd, p)
	}
	if len(inCmd) == 0 {
		return carry
	}
	res, err := a.apply(cmd)
	if err != nil {
		fail(inCmd, response{Code: codeOf(err), Msg: err.Error()})
		return carry
	}
	for i, p := range inCmd {
		r := res[i]
		switch {
		case r.Code == "":
			al := r.Alloc
			p.resp <- response{Alloc: &al, Index: r.Index}
		case r.Code == codeConflict && p.req.Claim == nil && p.tries < 3:
			// Planned from a state that moved on: plan again.
			p.tries++
			carry = append(carry, p)
		default:
			p.resp <- response{Code: r.Code, Msg: r.Msg}
		}
	}
	return carry
}

// apply commits cmd and returns the per-item results.
func (a *Allocator) apply(cmd command) ([]result, error) {
	b, err := jsonMarshal(cmd)
	if err != nil {
		return nil, err
	}
	f := a.raft.Apply(b, a.cfg.RequestTimeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrRaftShutdown):
			return nil, fmt.Errorf("%w: committing on %s: %v (outcome of an entry that was already sent is decided by the new leader; the request is retried)", ErrNoQuorum, a.cfg.Site, err)
		}
		return nil, fmt.Errorf("committing allocation: %w", err)
	}
	switch r := f.Response().(type) {
	case []result:
		n := len(cmd.Assign) + len(cmd.Release)
		if len(r) != n {
			return nil, fmt.Errorf("allocator: %d results for %d items", len(r), n)
		}
		return r, nil
	case error:
		return nil, r
	default:
		return nil, fmt.Errorf("allocator: unexpected FSM response %T", r)
	}
}
