package alloc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Restore is offline: it writes raft state into a stopped voter's state
// dir, which must hold none, and the voter starts from it. There is no
// restore into a running fleet: rolling the live table back would drop the
// sites allocated since the backup and hand their values out again, and a
// table that is only partly lost heals by itself (a voter that lost its
// store catches up from the others; every site re-asserts its recorded
// values). Restore is for a lone voter that lost its store, or for a fleet
// whose voters all did: restore the same backup on every voter before
// starting any of them (or on one, with the others' raft dirs moved aside:
// those then catch up from it).

// ErrRestoreRefused: the state dir cannot take a restore (it holds raft
// state, the agent is running, or it belongs to a site the backup does
// not know as a voter).
var ErrRestoreRefused = errors.New("restore refused")

// Restore writes the allocation table of b into the allocator state dir
// stateDir (Config.StateDir) of a stopped voter: a raft snapshot at the
// backup's index and term with its voter set, and the current term. Sites
// allocated after the backup re-assert their recorded values when they
// next ask (at start, then every few minutes).
func Restore(stateDir string, b Backup) error {
	if len(b.table) == 0 {
		return fmt.Errorf("%w: empty backup", ErrBadBackup)
	}
	return withEmptyRaftDir(stateDir, b.Voters, func(store *raftStore, snaps raft.SnapshotStore, trans raft.Transport) error {
		if err := checkRecordAgainst(stateDir, b); err != nil {
			return err
		}
		sink, err := snaps.Create(1, b.Index, b.Term, configuration(b.Voters), b.ConfigurationIndex, trans)
		if err != nil {
			return fmt.Errorf("creating raft snapshot: %w", err)
		}
		if _, err := sink.Write(b.table); err != nil {
			sink.Cancel()
			return fmt.Errorf("writing raft snapshot: %w", err)
		}
		if err := sink.Close(); err != nil {
			return fmt.Errorf("writing raft snapshot: %w", err)
		}
		// Raft's terms never go back: its next term follows the table's.
		return store.SetUint64(keyCurrentTerm, b.Term)
	})
}

// RestoreEmpty starts a new, empty allocation table in the allocator state
// dir of a stopped voter, bootstrapping the voter set as a new voter does:
// the operator's explicit choice when a lone voter lost its table and no
// backup exists. Sites that hold allocations re-assert them and keep them
// (they are disjoint); sites that are down lose theirs to whoever asks
// first until they come back.
func RestoreEmpty(stateDir string, voters []string) error {
	if err := checkVoters(voters); err != nil {
		return fmt.Errorf("%w: %w", ErrRestoreRefused, err)
	}
	return withEmptyRaftDir(stateDir, voters, func(store *raftStore, snaps raft.SnapshotStore, trans raft.Transport) error {
		rc := raft.DefaultConfig()
		rc.LocalID = raft.ServerID(voters[0])
		rc.Logger = hclog.NewNullLogger()
		if err := raft.BootstrapCluster(rc, store, store, snaps, trans, configuration(voters)); err != nil {
			return fmt.Errorf("bootstrapping raft: %w", err)
		}
		return nil
	})
}

// withEmptyRaftDir opens the raft store and snapshots of a stopped voter's
// state dir, refuses if they hold state or the state dir belongs to a site
// that is not among voters, runs fn, and marks the state dir as holding
// raft state.
func withEmptyRaftDir(stateDir string, voters []string, fn func(*raftStore, raft.SnapshotStore, raft.Transport) error) error {
	dir := filepath.Join(stateDir, raftDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating raft dir: %w", err)
	}
	if r, found, err := readRecord(stateDir); err != nil {
		return err
	} else if found && !slices.Contains(voters, r.Alloc.Site) {
		return fmt.Errorf("%w: %s belongs to site %s, which is not a voter of [%s]", ErrRestoreRefused, stateDir, r.Alloc.Site, strings.Join(voters, " "))
	}
	store, err := openRaftStore(filepath.Join(dir, raftStoreFile))
	switch {
	case errors.Is(err, errStoreBusy):
		return fmt.Errorf("%w: %v (stop the agent first)", ErrRestoreRefused, err)
	case errors.Is(err, ErrCorruptStore):
		return fmt.Errorf("%w: %v; move the raft dir aside first (mv %s %s.damaged)", ErrRestoreRefused, err, dir, dir)
	case err != nil:
		return err
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		return fmt.Errorf("opening raft snapshots: %w", err)
	}
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("reading raft state: %w", err)
	}
	if existing {
		return fmt.Errorf("%w: %s holds raft state already; restore writes into an empty raft dir only: move it aside first (mv %s %s.old)", ErrRestoreRefused, dir, dir, dir)
	}
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	if err := fn(store, snaps, trans); err != nil {
		return err
	}
	return writeMarker(stateDir)
}

// checkRecordAgainst refuses a backup that holds this state dir's own site
// with other values or another owner than its record: a backup of another
// fleet, or of a table that was renumbered since.
func checkRecordAgainst(stateDir string, b Backup) error {
	r, found, err := readRecord(stateDir)
	if err != nil || !found {
		return err
	}
	sites, _, err := decodeSnapshot(b.table)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	held, ok := sites[r.Alloc.Site]
	switch {
	case !ok:
		return nil // allocated after the backup: it re-asserts its record
	case held.Owner != r.Owner:
		return fmt.Errorf("%w: the backup holds site %s for node %s but this state dir is node %s: a backup of another fleet?", ErrRestoreRefused, r.Alloc.Site, short(held.Owner), short(r.Owner))
	case held.Alloc != r.Alloc:
		return fmt.Errorf("%w: the backup holds %v but this site's record says %v: a backup of another fleet?", ErrRestoreRefused, held.Alloc, r.Alloc)
	}
	return nil
}

// configuration is the raft configuration of a fixed voter set, as every
// voter bootstraps it.
func configuration(voters []string) raft.Configuration {
	v := slices.Clone(voters)
	sort.Strings(v)
	var c raft.Configuration
	for _, s := range v {
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s), Address: raft.ServerAddress(s)})
	}
	return c
}
