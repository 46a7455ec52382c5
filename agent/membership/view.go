package membership

// What this site knows of the others: member states, the peers the
// allocator asks for, and the problems an operator should see.

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tfsite/tfsite/agent/site"
)

// Members returns every site seen, including the local one, sorted by name.
// Sites that died or left stay listed (state dead/left).
func (m *Membership) Members() []Member {
	live := m.liveNames()
	type entry struct {
		node    *memberlist.Node
		decoded decodedMeta
		since   time.Time
		susp    bool
	}
	// One lock, no decoding: metadata is decoded once when it changes
	// (remember), not on every call — raft asks for voter addresses through
	// here on every message it sends.
	m.mu.Lock()
	entries := make([]entry, 0, len(m.known)+1)
	for name, n := range m.known {
		since, susp := m.suspect[name]
		entries = append(entries, entry{n, m.decoded[name], since, susp})
	}
	self := &memberlist.Node{Name: m.cfg.Site, Addr: m.local.Addr().AsSlice(), Port: m.local.Port(), Meta: m.meta}
	localMeta := m.meta
	m.mu.Unlock()
	meta, err := DecodeMeta(localMeta)
	entries = append(entries, entry{node: self, decoded: decodedMeta{meta, err}})
	out := make([]Member, 0, len(entries))
	for _, e := range entries {
		n := e.node
		if n.Name == m.cfg.Site && n != self {
			continue // our own node as gossip reported it; self is current
		}
		mem := Member{Site: n.Name, Local: n == self}
		a, _ := netip.AddrFromSlice(n.Addr)
		mem.Addr = netip.AddrPortFrom(a.Unmap(), n.Port)
		meta, err := e.decoded.meta, e.decoded.err
		since, susp := e.since, e.susp
		switch {
		case mem.Local:
			mem.State = StateAlive
		case live[n.Name] && susp && time.Since(since) < m.suspectHold:
			mem.State = StateSuspect
		case live[n.Name]:
			mem.State = StateAlive
		case err == nil && meta.Leaving:
			mem.State = StateLeft
		default:
			mem.State = StateDead
		}
		if err != nil {
			mem.MetaError = err.Error()
		} else if meta.Site != n.Name {
			mem.MetaError = fmt.Sprintf("metadata names site %q, node is %q", meta.Site, n.Name)
		} else {
			mem.Meta = meta
		}
		out = append(out, mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}

// decodedMeta is a node's metadata decoded once, with its decoding error.
type decodedMeta struct {
	meta Meta
	err  error
}

// liveNames is the set of members memberlist considers alive or suspect.
func (m *Membership) liveNames() map[string]bool {
	live := map[string]bool{}
	for _, n := range m.ml.Members() {
		live[n.Name] = true // Name never changes; other fields are racy to read
	}
	return live
}

// Peers implements alloc.MemberSource: every other site with decodable
// metadata. It reads only this package's copies of the nodes (no sorting,
// no call into memberlist), because the allocator asks often.
func (m *Membership) Peers() []site.Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]site.Peer, 0, len(m.known))
	for name, n := range m.known {
		if p, ok := m.peerLocked(name, n); ok {
			out = append(out, p)
		}
	}
	return out
}

// Peer returns one other site as Peers would list it. Raft resolves voter
// addresses through it on every message, so it must not list the fleet.
func (m *Membership) Peer(name string) (site.Peer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.known[name]
	if !ok {
		return site.Peer{}, false
	}
	return m.peerLocked(name, n)
}

// peerLocked converts a remembered node; m.mu is held. The copy's State
// is set from its last event (see remember): memberlist reports every
// change between alive and dead/left (NotifyJoin/NotifyLeave), and suspect
// counts as alive, so it agrees with liveNames.
func (m *Membership) peerLocked(name string, n *memberlist.Node) (site.Peer, bool) {
	d := m.decoded[name]
	if name == m.cfg.Site || d.err != nil || d.meta.Site != name {
		return site.Peer{}, false
	}
	addr, _ := netip.AddrFromSlice(n.Addr)
	return site.Peer{
		Site: name, Addr: addr.Unmap(), Endpoint: d.meta.RPC, VoterHash: d.meta.VoterHash, Key: d.meta.Key, Released: d.meta.Released,
		Alive: n.State == memberlist.StateAlive || n.State == memberlist.StateSuspect,
	}, true
}

// Problems lists what an operator should look at: duplicate site names
// (two nodes claiming one site) and peers with undecodable metadata.
func (m *Membership) Problems() []string {
	_, problems := m.View()
	return problems
}

// View returns Members() and Problems() from one listing of the members
// (the status API and metrics want both on every call).
func (m *Membership) View() ([]Member, []string) {
	var out []string
	m.mu.Lock()
	for _, c := range m.conflicts {
		out = append(out, c)
	}
	m.mu.Unlock()
	members := m.Members()
	for _, mem := range members {
		if mem.MetaError != "" && mem.State != StateDead && mem.State != StateLeft {
			out = append(out, fmt.Sprintf("peer %s (%s): %s", mem.Site, mem.Addr, mem.MetaError))
		}
	}
	sort.Strings(out)
	return members, out
}
