package alloc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/tfsite/tfsite/agent/site"
)

// The replicated state machine. Its only rule: an assignment is accepted
// only if it is disjoint (ASN and every prefix) from every assignment held
// by another site, and a site is only ever held by one owner (node
// identity). Decisions depend only on the committed state and the command,
// never on local configuration, so every replica decides alike.

// record is one committed assignment.
type record struct {
	Alloc site.Allocation `json:"alloc"`
	// Owner is the node identity of the site holder (random, kept in the
	// holder's state dir); a second node claiming the same site name is a
	// conflict, not a second holder.
	Owner string `json:"owner"`
	// Key is the site's static public key, bound at its first allocation
	// (trust on first use): voters accept the site's requests only over a
	// channel authenticated by it. Empty for entries committed before keys
	// existed; the site's next re-assertion binds it.
	Key []byte `json:"key,omitempty"`
	// Index is the raft index that committed it.
	Index uint64 `json:"index"`
}

// Command operations.
const (
	opAssign  = "assign"
	opRelease = "release"
)

// command is one raft log entry.
type command struct {
	Op      string       `json:"op"`
	Assign  []assignment `json:"assign,omitempty"`
	Release []string     `json:"release,omitempty"`
}

type assignment struct {
	Owner string          `json:"owner"`
	Alloc site.Allocation `json:"alloc"`
	// Key is the requester's static public key, as its channel proved it.
	Key []byte `json:"key,omitempty"`
}

// result of one assignment or release, in command order.
type result struct {
	Alloc site.Allocation `json:"alloc"`
	// Index is the raft index that committed the site's entry (assign).
	Index uint64 `json:"index,omitempty"`
	Code  string `json:"code,omitempty"` // "" ok, else an error code (see codes)
	Msg   string `json:"msg,omitempty"`
}

func decodeCommand(b []byte) (command, error) {
	var c command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decoding allocation command: %w", err)
	}
	switch c.Op {
	case opAssign, opRelease:
	default:
		return c, fmt.Errorf("decoding allocation command: unknown op %q", c.Op)
	}
	return c, nil
}

// fsm implements raft.FSM.
type fsm struct {
	mu    sync.RWMutex
	sites map[string]record
	// gen is closed (and replaced) after every applied command and restore,
	// so any number of watchers wake on a change (see watch).
	gen chan struct{}
	// released is the raft index of the last release that removed an
	// entry: voters publish it in gossip, and every site re-asserts its
	// allocation when it changes (watch.go).
	released uint64
}

func newFSM() *fsm { return &fsm{sites: map[string]record{}, gen: make(chan struct{})} }

// watch returns a channel that is closed at the next change of the state.
func (f *fsm) watch() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.gen
}

// releasedIndex is the index of the last release applied (fsm.released).
func (f *fsm) releasedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.released
}

// changedLocked wakes the watchers; f.mu is held for writing.
func (f *fsm) changedLocked() {
	close(f.gen)
	f.gen = make(chan struct{})
}

// Apply implements raft.FSM. It returns []result, or an error for an
// undecodable entry (which then changes nothing).
func (f *fsm) Apply(l *raft.Log) any {
	c, err := decodeCommand(l.Data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changedLocked()
	var res []result
	switch c.Op {
	case opAssign:
		for _, a := range c.Assign {
			res = append(res, f.assignLocked(a, l.Index))
		}
	case opRelease:
		for _, site := range c.Release {
			r, ok := f.sites[site]
			if !ok {
				res = append(res, result{Code: codeUnknownSite, Msg: fmt.Sprintf("site %q holds no allocation", site)})
				continue
			}
			delete(f.sites, site)
			f.released = l.Index
			res = append(res, result{Alloc: r.Alloc})
		}
	}
	return res
}

func (f *fsm) assignLocked(a assignment, index uint64) result {
	al := a.Alloc
	if err := al.Validate(); err != nil {
		return result{Code: codeInvalid, Msg: err.Error()}
	}
	if a.Owner == "" {
		return result{Code: codeInvalid, Msg: "assignment without owner"}
	}
	if a.Key != nil && len(a.Key) != site.KeyLen {
		return result{Code: codeInvalid, Msg: fmt.Sprintf("assignment key of %d bytes, want %d", len(a.Key), site.KeyLen)}
	}
	if r, ok := f.sites[al.Site]; ok {
		switch {
		case r.Owner != a.Owner:
			return result{Alloc: r.Alloc, Code: codeConflict, Msg: fmt.Sprintf("site %q is held by another node (owner %s, this node %s): two nodes use one site name, or the site was reinstalled; if the old node is gone for good run `tfsite site release %s` on a voter", al.Site, short(r.Owner), short(a.Owner), al.Site)}
		case r.Key != nil && !sameKey(r.Key, a.Key):
			return result{Alloc: r.Alloc, Code: codeConflict, Msg: fmt.Sprintf("site %q is bound to another site key (%s, this node %s): its state dir was replaced or copied; if the old node is gone for good run `tfsite site release %s` on a voter", al.Site, shortKey(r.Key), shortKey(a.Key), al.Site)}
		case r.Alloc != al:
			return result{Alloc: r.Alloc, Code: codeConflict, Msg: fmt.Sprintf("site %q already holds %v, refusing %v", al.Site, r.Alloc, al)}
		}
		if r.Key == nil && a.Key != nil {
			// An entry from before site keys: bind the key now.
			r.Key = a.Key
			f.sites[al.Site] = r
		}
		return result{Alloc: r.Alloc, Index: r.Index}
	}
	if holder, why := f.collidesLocked(al); holder != "" {
		return result{Code: codeConflict, Msg: fmt.Sprintf("%v collides with site %q: %s", al, holder, why)}
	}
	f.sites[al.Site] = record{Alloc: al, Owner: a.Owner, Key: a.Key, Index: index}
	return result{Alloc: al, Index: index}
}

// collidesLocked returns a site holding a value overlapping al, if any.
func (f *fsm) collidesLocked(al site.Allocation) (string, string) {
	for site, r := range f.sites {
		if site == al.Site {
			continue
		}
		if r.Alloc.ASN == al.ASN {
			return site, fmt.Sprintf("same ASN %d", al.ASN)
		}
		for _, p := range al.Prefixes() {
			for _, q := range r.Alloc.Prefixes() {
				if p.Overlaps(q) {
					return site, fmt.Sprintf("%s overlaps %s", p, q)
				}
			}
		}
	}
	return "", ""
}

func short(owner string) string {
	if len(owner) > 8 {
		return owner[:8]
	}
	return owner
}

// get returns the record for site.
func (f *fsm) get(site string) (record, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.sites[site]
	return r, ok
}

// held returns a copy of every allocation by site.
func (f *fsm) held() map[string]site.Allocation {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := make(map[string]site.Allocation, len(f.sites))
	for s, r := range f.sites {
		m[s] = r.Alloc
	}
	return m
}

// table returns every allocation sorted by site.
func (f *fsm) table() []site.Allocation {
	f.mu.RLock()
	out := make([]site.Allocation, 0, len(f.sites))
	for _, r := range f.sites {
		out = append(out, r.Alloc)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}

// snapshot format.
type snapshotData struct {
	Version int      `json:"version"`
	Records []record `json:"records"`
	// Released is fsm.released.
	Released uint64 `json:"released,omitempty"`
}

const snapshotVersion = 1

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := snapshotData{Version: snapshotVersion, Records: make([]record, 0, len(f.sites)), Released: f.released}
	for _, r := range f.sites {
		d.Records = append(d.Records, r)
	}
	sort.Slice(d.Records, func(i, j int) bool { return d.Records[i].Alloc.Site < d.Records[j].Alloc.Site })
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(b), nil
}

// Restore implements raft.FSM. A snapshot that is malformed or holds
// colliding allocations is refused (raft then fails loudly) rather than
// loaded.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxBackupSize))
	if err != nil {
		return fmt.Errorf("reading allocation snapshot: %w", err)
	}
	sites, released, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.sites, f.released = sites, released
	f.changedLocked()
	f.mu.Unlock()
	return nil
}

func decodeSnapshot(b []byte) (map[string]record, uint64, error) {
	var d snapshotData
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, 0, fmt.Errorf("decoding allocation snapshot: %w", err)
	}
	if d.Version != snapshotVersion {
		return nil, 0, fmt.Errorf("allocation snapshot version %d, this agent reads %d: upgrade the agent", d.Version, snapshotVersion)
	}
	sites := make(map[string]record, len(d.Records))
	var all []site.Allocation
	var errs []error
	for _, r := range d.Records {
		if err := r.Alloc.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if r.Key != nil && len(r.Key) != site.KeyLen {
			errs = append(errs, fmt.Errorf("site %q: key of %d bytes, want %d", r.Alloc.Site, len(r.Key), site.KeyLen))
			continue
		}
		if _, dup := sites[r.Alloc.Site]; dup {
			errs = append(errs, fmt.Errorf("site %q twice", r.Alloc.Site))
			continue
		}
		sites[r.Alloc.Site] = r
		all = append(all, r.Alloc)
	}
	if err := site.CheckDisjoint(all); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, 0, fmt.Errorf("allocation snapshot is inconsistent, refusing it: %w", err)
	}
	return sites, d.Released, nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("writing allocation snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
