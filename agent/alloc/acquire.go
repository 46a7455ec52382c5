package alloc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tfsite/tfsite/agent/site"
)

func (a *Allocator) waitTimer(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// acquire asks for (or re-asserts) the allocation once.
func (a *Allocator) acquire(ctx context.Context) error {
	a.mu.Lock()
	var claim *site.Allocation
	if a.rec != nil {
		c := *a.rec
		claim = &c
	}
	wasConfirmed := a.confirmed
	if !wasConfirmed && a.phase == PhaseStarting {
		a.phase = PhaseRequesting
	}
	a.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	resp, err := a.send(rctx, request{Op: rpcAllocate, Site: a.cfg.Site, Owner: a.owner, Claim: claim, VoterHash: a.hash})
	if err == nil && resp.Alloc == nil {
		err = errors.New("allocator: voter answered without an allocation")
	}
	if err == nil && claim != nil && *resp.Alloc != *claim {
		err = fmt.Errorf("%w: committed state holds %v for this site but its record says %v", ErrConflict, *resp.Alloc, *claim)
	}
	if err == nil && resp.Alloc.Site != a.cfg.Site {
		err = fmt.Errorf("allocator: voter answered for site %q", resp.Alloc.Site)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		a.setError(err, wasConfirmed)
		return err
	}
	a.mu.Lock()
	recommitted := claim != nil && a.recIndex != 0 && resp.Index != a.recIndex
	a.mu.Unlock()
	if claim == nil {
		if werr := writeRecord(a.cfg.StateDir, localRecord{Owner: a.owner, Alloc: *resp.Alloc}); werr != nil {
			// Committed but not recorded: the FSM keeps it for our owner id,
			// so the next attempt gets the same values back.
			a.setError(fmt.Errorf("recording allocation: %w", werr), false)
			return werr
		}
		a.log.Info("allocation committed", "site", a.cfg.Site, "asn", resp.Alloc.ASN, "pod", resp.Alloc.Pod, "service", resp.Alloc.Service, "fabric", resp.Alloc.Fabric)
	} else if recommitted {
		a.log.Warn("this site's allocation had been released while it was running; its values were still free and are committed again", "allocation", resp.Alloc.String())
	} else if !wasConfirmed {
		a.log.Info("recorded allocation confirmed", "allocation", resp.Alloc.String())
	}
	a.mu.Lock()
	if a.rec == nil {
		al := *resp.Alloc
		a.rec = &al
		close(a.allocated)
	}
	a.confirmed, a.recIndex = true, resp.Index
	a.phase, a.lastErr = PhaseAllocated, ""
	a.mu.Unlock()
	a.notify()
	return nil
}

func (a *Allocator) setError(err error, allocated bool) {
	phase := PhaseNoQuorum
	switch {
	case errors.Is(err, ErrConflict):
		phase = PhaseConflict
	case errors.Is(err, ErrExhausted):
		phase = PhaseExhausted
	case errors.Is(err, ErrVoterMismatch):
		phase = PhaseVoterMismatch
	case errors.Is(err, ErrNoVoter):
		phase = PhaseWaitingVoters
	case errors.Is(err, ErrRefused) && !allocated:
		phase = PhaseRequesting
	case allocated:
		// Held and recorded; only re-verification failed for now.
		phase = PhaseAllocated
	}
	a.mu.Lock()
	msg := err.Error()
	changed := a.phase != phase || a.lastErr != msg
	if phase == PhaseConflict && a.phase != PhaseConflict {
		a.log.Error("allocation conflict: operator action needed", "site", a.cfg.Site, "err", err)
	} else if changed && phase == PhaseWaitingVoters {
		a.log.Info("waiting for a voter to appear in gossip", "site", a.cfg.Site, "voters", a.cfg.Voters)
	} else if changed {
		a.log.Warn("allocation not (re)confirmed", "site", a.cfg.Site, "phase", phase, "err", err)
	}
	a.phase, a.lastErr = phase, msg
	a.mu.Unlock()
	if changed {
		a.notify()
	}
}

// send delivers req to the leader: through the local raft member on a
// voter, else through any voter known from gossip, following not-leader
// redirects.
func (a *Allocator) send(ctx context.Context, req request) (response, error) {
	type target struct {
		site string
		ep   netip.AddrPort
		key  []byte
	}
	var targets []target
	mismatch := 0
	for _, p := range a.members.Peers() {
		if !p.Alive || !p.Endpoint.IsValid() {
			continue
		}
		if p.VoterHash != "" && p.VoterHash != a.hash {
			mismatch++
			continue
		}
		targets = append(targets, target{p.Site, p.Endpoint, a.voterKey(p.Site)})
	}
	rand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	a.mu.Lock()
	hint := a.leaderHint
	a.mu.Unlock()
	sort.SliceStable(targets, func(i, j int) bool { return targets[i].site == hint && targets[j].site != hint })
	if a.voter {
		targets = append([]target{{site: a.cfg.Site}}, targets...)
	}
	if len(targets) == 0 {
		if mismatch > 0 {
			return response{}, fmt.Errorf("%w: every voter seen (%d) is configured with another voter set than ours (%s): make the voters list identical on every site", ErrVoterMismatch, mismatch, a.hash)
		}
		return response{}, fmt.Errorf("%w: no voter of [%s] seen through gossip yet (check seeds and gossip key)", ErrNoVoter, strings.Join(a.cfg.Voters, " "))
	}
	var errs []error
	tried := map[string]bool{}
	for i := 0; i < len(targets) && i < 8; i++ {
		t := targets[i]
		if tried[t.site] {
			continue
		}
		tried[t.site] = true
		var resp response
		var err error
		if t.site == a.cfg.Site && a.voter {
			resp = a.handle(ctx, req, a.localCaller())
		} else {
			resp, err = call(ctx, a.dial, a.kr, a.self, t.ep, t.key, req)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("voter %s: %w", t.site, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if resp.Code == codeNotLeader && resp.Leader != "" {
			a.mu.Lock()
			a.leaderHint = resp.Leader
			a.mu.Unlock()
			if !tried[resp.Leader] {
				// Try the leader next: at the endpoint gossip shows, else
				// where the answering voter says it is.
				ep, ok := a.voterEndpoint(resp.Leader)
				key := a.voterKey(resp.Leader)
				if !ok && resp.LeaderEndpoint.IsValid() {
					ep, ok = resp.LeaderEndpoint, true
				}
				if key == nil {
					key = resp.LeaderKey
				}
				if ok {
					targets = slices.Insert(targets, i+1, target{resp.Leader, ep, key})
				}
			}
			errs = append(errs, fmt.Errorf("voter %s: not the leader (leader %s)", t.site, resp.Leader))
			continue
		}
		if resp.Code == codeNoQuorum || resp.Code == codeNotLeader {
			errs = append(errs, errorOf(codeNoQuorum, fmt.Sprintf("voter %s: %s", t.site, resp.Msg)))
			continue
		}
		if resp.Code == codeVoterMismatch {
			return resp, errorOf(resp.Code, resp.Msg)
		}
		if resp.Code != "" {
			return resp, errorOf(resp.Code, resp.Msg)
		}
		return resp, nil
	}
	return response{}, fmt.Errorf("%w: no voter leader answered: %w", ErrNoQuorum, errors.Join(errs...))
}
