package membership

// memberlist's delegates: this site's metadata out, member events in.

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's Delegate, EventDelegate, ConflictDelegate
// and PingDelegate.
type delegate struct{ m *Membership }

func (d *delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if len(d.m.meta) > limit {
		return nil // EncodeMeta enforces MetaMaxSize; never reached
	}
	return append([]byte(nil), d.m.meta...)
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// remember copies n. memberlist keeps a node's state outside the Node it
// passes (Node.State stays zero), so the copy's State is set from the event:
// alive on join and update, dead on leave (left or failed).
func (d *delegate) remember(n *memberlist.Node, alive bool) {
	c := *n
	c.Meta = append([]byte(nil), n.Meta...)
	c.State = memberlist.StateDead
	if alive {
		c.State = memberlist.StateAlive
	}
	d.m.mu.Lock()
	d.m.known[n.Name] = &c
	meta, err := DecodeMeta(c.Meta)
	d.m.decoded[n.Name] = decodedMeta{meta, err}
	delete(d.m.suspect, n.Name)
	d.m.mu.Unlock()
	d.m.notify()
}

func (d *delegate) NotifyJoin(n *memberlist.Node) {
	d.remember(n, true)
	d.m.log.Debug("site joined", "site", n.Name, "addr", n.Address())
}

func (d *delegate) NotifyLeave(n *memberlist.Node) {
	d.remember(n, false)
	d.m.log.Info("site left or failed", "site", n.Name, "addr", n.Address())
}

func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.remember(n, true) }

// AckPayload implements memberlist.PingDelegate: acks carry nothing.
func (d *delegate) AckPayload() []byte { return nil }

// NotifyPingComplete implements memberlist.PingDelegate: a direct probe of
// other was acked, so it is no longer suspect from here. (A refuted
// suspicion raises no event when the metadata is unchanged.)
func (d *delegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	d.m.mu.Lock()
	_, was := d.m.suspect[other.Name]
	delete(d.m.suspect, other.Name)
	d.m.mu.Unlock()
	if was {
		d.m.notify()
	}
}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	msg := fmt.Sprintf("duplicate site name %q: claimed by %s and %s: give every site a unique name", existing.Name, existing.Address(), other.Address())
	d.m.mu.Lock()
	_, seen := d.m.conflicts[existing.Name]
	d.m.conflicts[existing.Name] = msg
	d.m.mu.Unlock()
	if !seen {
		d.m.log.Error(msg)
	}
	d.m.notify()
}
