package netguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// A pending record that does not decode (a disk fault, a bad edit) must not
// leave a host that a change cut off with no way back: its snapshot is
// often intact, and restoring it is what a revert would have done. The
// record is searched field by field, so damage elsewhere (a truncated plan,
// a garbled description) does not hide the snapshot; the snapshot itself is
// decoded strictly and checked as DecodePending checks it.

// salvagePending reads what it can of a damaged pending record: the
// snapshot (required, checked), the links to delete on revert (their
// readability is reported by removeKnown), the id and pid for the journal.
func salvagePending(data []byte) (p *Pending, removeKnown bool, err error) {
	if len(data) > maxFileBytes {
		return nil, false, fmt.Errorf("%d bytes, more than %d", len(data), maxFileBytes)
	}
	p = &Pending{Kind: "plan"}
	if !salvageField(data, "snapshot", &p.Snapshot, true) {
		return nil, false, ErrNoSnapshot
	}
	if errs := checkSnapshot(&p.Snapshot); len(errs) > 0 {
		return nil, false, fmt.Errorf("snapshot: %s", joinOneLine(errs))
	}
	var links []string
	if salvageField(data, "removeLinks", &links, true) && checkLinks(links) == nil {
		p.RemoveLinks, removeKnown = links, true
	} else if plan := new(Plan); salvageField(data, "plan", plan, true) && plan.check() == nil {
		p.RemoveLinks, removeKnown = plan.CreatedLinks(), true
	} else if json.Valid(data) && !keyPattern("removeLinks").Match(data) && !keyPattern("plan").Match(data) {
		removeKnown = true // a whole record naming no links to delete
	}
	var id string
	if salvageField(data, "id", &id, false) && len(id) <= 64 && oneline.Of(id) == id {
		p.ID = id
	} else {
		p.ID = "unknown"
	}
	salvageField(data, "pid", &p.PID, false)
	return p, removeKnown, nil
}

// salvageField decodes the first value of "key" in data that decodes into v.
func salvageField(data []byte, key string, v any, strict bool) bool {
	for _, m := range keyPattern(key).FindAllIndex(data, 8) {
		var raw json.RawMessage
		if err := json.NewDecoder(bytes.NewReader(data[m[1]:])).Decode(&raw); err != nil {
			continue
		}
		var err error
		if strict {
			err = strictjson.Unmarshal(raw, v)
		} else {
			err = json.Unmarshal(raw, v)
		}
		if err == nil {
			return true
		}
	}
	return false
}

// keyPattern matches "key": in JSON (a quote inside a string is escaped,
// so string values do not match).
func keyPattern(key string) *regexp.Regexp {
	return regexp.MustCompile(`"` + regexp.QuoteMeta(key) + `"\s*:`)
}

// checkSnapshot is what a snapshot must satisfy to be restored.
func checkSnapshot(s *State) []error {
	var errs []error
	if len(s.Links) == 0 {
		errs = append(errs, errors.New("snapshot holds no links"))
	}
	if err := checkLinks(linkNames(s.Links)); err != nil {
		errs = append(errs, err)
	}
	for _, a := range s.Addresses {
		if !a.Address.IsValid() {
			errs = append(errs, fmt.Errorf("snapshot address on %q is not an address", a.LinkName))
		}
	}
	return errs
}

func checkLinks(names []string) error {
	var errs []error
	for _, l := range names {
		if err := checkLinkName("link", l); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return joinOneLine(errs)
}

// damaged explains a corrupt pending record on one line: the file (in
// err), whether its snapshot can still be restored, and the way out.
func (g *Guard) damaged(err error) error {
	path := g.store.path(pendingFile)
	if data, rerr := os.ReadFile(path); rerr == nil {
		if p, _, serr := salvagePending(data); serr == nil {
			return fmt.Errorf("%w; its snapshot (%d links, %d addresses, %d routes) is intact: `tfsite net recover --salvage` restores it and moves the file aside (the boot unit does this), or `mv %s %s.damaged` keeps the network as it is",
				err, len(p.Snapshot.Links), len(p.Snapshot.Addresses), len(p.Snapshot.Routes), path, path)
		}
	}
	return noSnapshot(err, path)
}

func noSnapshot(err error, path string) error {
	return fmt.Errorf("%w; %w, so nothing was reverted: move it aside (mv %s %s.damaged, or the console's \"Roll back network change\" entry), then, if the host is unreachable, use the console's \"Reset underlay to DHCP\" entry or set the address by hand",
		err, ErrNoSnapshot, path, path)
}

// SetAside moves a damaged pending record that holds no readable snapshot
// out of the way (pending.json.damaged-TIME) and journals who did it, so
// that new guarded changes can run again: the console's way out for an
// operator who has no shell. It refuses an intact record (revert or
// confirm it instead), one whose snapshot is readable (Salvage restores
// it), and while a live process guards a change.
func (g *Guard) SetAside(actor string) (string, error) {
	lock, err := g.store.TryLock()
	if errors.Is(err, ErrBusy) {
		return "", g.busyError()
	}
	if err != nil {
		return "", err
	}
	defer lock.Unlock()
	_, err = g.store.Pending()
	if err == nil {
		return "", fmt.Errorf("the pending change is not damaged: roll it back or confirm it instead")
	}
	if !errors.Is(err, ErrCorrupt) {
		return "", err
	}
	path := g.store.path(pendingFile)
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		return "", fmt.Errorf("reading %s: %w", path, rerr)
	}
	if _, _, serr := salvagePending(data); serr == nil {
		return "", fmt.Errorf("%s holds an intact snapshot: restore it (tfsite net recover --salvage) instead of setting it aside", path)
	}
	aside := g.asideName(path)
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("moving %s aside: %w", path, err)
	}
	if err := atomicfile.SyncDir(g.store.Dir); err != nil {
		g.log.Warn("syncing the state dir", "err", err)
	}
	_ = atomicfile.Remove(g.store.path(decisionFile))
	if err := g.store.Record(Event{ID: "unknown", Event: EventSetAside, Reason: fmt.Sprintf("set aside by %s: damaged, no readable snapshot (moved to %s); nothing was reverted", actor, aside)}); err != nil {
		g.log.Warn("recording the set-aside record", "err", err)
	}
	g.log.Warn("moved a damaged pending record with no snapshot aside", "moved", aside, "by", actor)
	return aside, nil
}

// Salvage is Recover for the boot unit: a change left pending is reverted,
// and so is one whose record is damaged but still holds an intact snapshot;
// that record is moved aside (pending.json.damaged-TIME) and the revert
// journaled. With no readable snapshot it reverts nothing and says so.
func (g *Guard) Salvage() (*Pending, error) {
	return g.recover(true)
}

func (g *Guard) salvage(cause error) (*Pending, error) {
	path := g.store.path(pendingFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (reading it again: %v)", cause, err)
	}
	p, removeKnown, serr := salvagePending(data)
	if serr != nil {
		return nil, noSnapshot(fmt.Errorf("%w (%v)", cause, serr), path)
	}
	aside := g.asideName(path)
	reason := fmt.Sprintf("salvaged from a damaged record (moved to %s): its snapshot restored; the process guarding it (pid %d) ended before confirming", aside, p.PID)
	if !removeKnown {
		reason += "; the links it created could not be read: look for leftovers (e.g. vhost0) with `tfsite net show`"
	}
	if err := g.kernel.Converge(&p.Snapshot, p.RemoveLinks); err != nil {
		msg := oneline.Of(err.Error())
		_ = g.store.Record(Event{ID: p.ID, Event: EventRevertFailed, Reason: reason + "; restore failed: " + msg})
		return p, fmt.Errorf("restoring the snapshot salvaged from the damaged record %s failed, the file stays: %s", path, msg)
	}
	if err := os.Rename(path, aside); err != nil {
		return p, fmt.Errorf("snapshot from the damaged record restored, but moving %s aside failed: %w", path, err)
	}
	if err := atomicfile.SyncDir(g.store.Dir); err != nil {
		g.log.Warn("syncing the state dir", "err", err)
	}
	_ = atomicfile.Remove(g.store.path(decisionFile))
	if err := g.store.Record(Event{ID: p.ID, Event: EventReverted, Reason: reason}); err != nil {
		g.log.Warn("recording the salvaged revert", "err", err)
	}
	g.log.Warn("reverted a change from its damaged record", "id", p.ID, "moved", aside)
	return p, nil
}

// asideName is where a damaged record is moved: path.damaged-TIME, with a
// counter when a record was already set aside in the same second, so an
// earlier one is never overwritten.
func (g *Guard) asideName(path string) string {
	base := path + ".damaged-" + g.now().UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); os.IsNotExist(err) {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}
