package alloc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// A voter's raft state is its copy of the allocation table. Losing it must
// never start a new, empty table silently: a lone voter would hand out every
// held value again. What a voter does with the state it finds at start:
//
//   - raft.db holds state: start from it (raft.db damaged: ErrCorruptStore);
//   - raft.db is missing or empty and nothing in the state dir shows this
//     voter held raft state before: a new voter, which bootstraps the fixed
//     voter set (every voter bootstraps the same configuration);
//   - raft.db is missing or empty but the state dir shows it held state (the
//     marker written once it did, this site's allocation record, raft
//     snapshots) and there are other voters: it does not bootstrap. It
//     starts without a configuration, and the leader, which lists it in its
//     configuration, sends it the log or a snapshot: it catches up;
//   - the same with no other voter: nobody can send the table back, so it
//     refuses to start (ErrStoreLost) until the operator restores the table
//     (Restore) or starts an empty one on purpose (RestoreEmpty).

// Sentinel errors of the raft state a voter finds at start.
var (
	// ErrCorruptStore: this voter's raft store (raft.db or its snapshots)
	// is damaged; the error names the file and the way out.
	ErrCorruptStore = errors.New("raft store damaged")
	// ErrStoreLost: this voter's raft store is missing or empty although
	// its state dir shows it held the allocation table, and no other voter
	// can send the table back: starting would begin a new, empty table.
	ErrStoreLost = errors.New("raft store lost")
)

// markerFile (in Config.StateDir, beside the raft dir so that moving the
// raft dir aside keeps it) is written once this voter holds raft state.
const markerFile = "raft-marker"

// raftStoreFile is the raft log and stable store in the raft dir.
const raftStoreFile = "raft.db"

// raftStart is what openRaft does with the raft state it found.
type raftStart int

const (
	startExisting  raftStart = iota // state found: start from it
	startBootstrap                  // a new voter: bootstrap the fixed voter set
	startRejoin                     // store lost, other voters hold the table: catch up from them
)

// planRaftStart decides how this voter's raft starts from the state in its
// state dir (see above).
func (a *Allocator) planRaftStart(snaps raft.SnapshotStore) (raftStart, error) {
	term, err := a.store.GetUint64(keyCurrentTerm)
	if err != nil && !errors.Is(err, errKeyNotFound) {
		return 0, err
	}
	last, err := a.store.LastIndex()
	if err != nil {
		return 0, err
	}
	if term != 0 || last != 0 {
		return startExisting, nil
	}
	evidence, err := a.heldEvidence(snaps)
	if err != nil {
		return 0, err
	}
	if len(evidence) == 0 {
		return startBootstrap, nil
	}
	db := filepath.Join(a.cfg.StateDir, raftDir, raftStoreFile)
	if others := a.otherVoters(); len(others) > 0 {
		a.log.Warn("raft store lost: not bootstrapping a new table; catching up from the other voters",
			"store", db, "evidence", strings.Join(evidence, "; "), "voters", others)
		return startRejoin, nil
	}
	return 0, fmt.Errorf("%w: %s is missing or empty but this voter held the allocation table (%s), and it is the fleet's only voter: starting would begin a new, empty table that hands out held values again; with the agent stopped, restore the table from a backup (tfsite restore BACKUP), or start an empty table on purpose (tfsite restore --empty --voters %s): docs/recovery.md",
		ErrStoreLost, db, strings.Join(evidence, "; "), strings.Join(a.cfg.Voters, ","))
}

// keyCurrentTerm is the stable-store key raft keeps its current term under.
var keyCurrentTerm = []byte("CurrentTerm")

// heldEvidence lists what in the state dir shows that this voter held raft
// state: the marker, this site's allocation record (a voter's own
// allocation is in the table) and raft snapshots.
func (a *Allocator) heldEvidence(snaps raft.SnapshotStore) ([]string, error) {
	var ev []string
	marker := filepath.Join(a.cfg.StateDir, markerFile)
	if _, err := os.Stat(marker); err == nil {
		ev = append(ev, "marker "+marker)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checking raft marker: %w", err)
	}
	a.mu.Lock()
	held := a.rec != nil
	a.mu.Unlock()
	if held {
		ev = append(ev, "this site's allocation record "+filepath.Join(a.cfg.StateDir, recordFile))
	}
	list, err := snaps.List()
	if err != nil {
		return nil, fmt.Errorf("listing raft snapshots: %w", err)
	}
	if len(list) > 0 {
		ev = append(ev, fmt.Sprintf("%d raft snapshot(s), the newest at index %d", len(list), list[0].Index))
	}
	return ev, nil
}

// otherVoters are the configured voters except this site.
func (a *Allocator) otherVoters() []string {
	return slices.DeleteFunc(slices.Clone(a.cfg.Voters), func(v string) bool { return v == a.cfg.Site })
}

// writeMarker records, once, that this state dir holds raft state.
func writeMarker(stateDir string) error {
	p := filepath.Join(stateDir, markerFile)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	msg := fmt.Sprintf("This state dir has held raft state since %s. If raft/%s is lost, the agent refuses to start a new, empty allocation table: docs/recovery.md.\n",
		time.Now().UTC().Format(time.RFC3339), raftStoreFile)
	if err := writeFileAtomic(p, []byte(msg)); err != nil {
		return fmt.Errorf("writing raft marker: %w", err)
	}
	return nil
}

// storeError gives an error opening or starting the raft store the way out:
// a damaged store is moved aside, then a voter of several catches up from
// the others and a lone voter gets its table restored.
func (a *Allocator) storeError(err error) error {
	if !errors.Is(err, ErrCorruptStore) {
		return err
	}
	dir := filepath.Join(a.cfg.StateDir, raftDir)
	if others := a.otherVoters(); len(others) > 0 {
		return fmt.Errorf("%w; with the agent stopped, move the raft dir aside (mv %s %s.damaged) and start the agent again: this voter then catches up from the other voters (%s)",
			err, dir, dir, strings.Join(others, ", "))
	}
	return fmt.Errorf("%w; this is the fleet's only voter: with the agent stopped, move the raft dir aside (mv %s %s.damaged) and restore the allocation table from a backup (tfsite restore BACKUP): docs/recovery.md",
		err, dir, dir)
}

// raftProblems reports a voter that lost its store and has not caught up
// from the other voters yet.
func (a *Allocator) raftProblems() []string {
	if a.raft == nil || !a.rejoining.Load() {
		return nil
	}
	_, leader := a.raft.LeaderWithID()
	if commit := a.raft.CommitIndex(); leader != "" && commit > 0 && a.raft.AppliedIndex() >= commit {
		a.rejoining.Store(false)
		a.log.Info("caught up from the other voters after losing the raft store", "leader", leader, "index", commit)
		return nil
	}
	return []string{fmt.Sprintf("voter %s lost its raft store and waits for the leader to send it the allocation table; if every voter lost it, restore one from a backup (docs/recovery.md)", a.cfg.Site)}
}
