package alloc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
)

// A backup of the allocation table is a raft snapshot of it (the state
// machine's JSON table, owners included) with what raft needs to start from
// it again: the index and term it was taken at and the voter set. One JSON
// file, readable with jq:
//
//	{"format": "tfsite-allocation-backup", "version": 1,
//	 "created": "...", "site": "v1", "leader": true,
//	 "voters": ["v1", "v2", "v3"],
//	 "raft": {"index": 812, "term": 4, "configurationIndex": 1},
//	 "sites": 14, "sha256": "<hex of the table, compacted>",
//	 "table": {"version": 1, "records": [{"alloc": {...}, "owner": "...", "index": 9}, ...]}}
//
// The checksum catches a file altered or damaged after it was written (a
// changed digit in a prefix would still decode). Decoding also refuses what
// the state machine would refuse (colliding sites, bad allocations).

// BackupFormat is the "format" field of every allocation table backup.
const BackupFormat = "tfsite-allocation-backup"

const backupVersion = 1

// MaxBackupSize bounds a backup file (and a snapshot the state machine
// restores). A 500-site table takes about 150 KB.
const MaxBackupSize = 64 << 20

// Sentinel errors of backups.
var (
	// ErrBadBackup: a backup file is damaged, truncated, too large or not
	// a backup at all.
	ErrBadBackup = errors.New("not a usable allocation backup")
	// ErrNotVoter: only a voter holds the table to back up.
	ErrNotVoter = errors.New("not a voter")
)

// Backup is a decoded backup of the allocation table.
type Backup struct {
	// Created is when it was taken.
	Created time.Time
	// Site is the voter it was taken on ("" when read from a stopped
	// voter's raft dir); Leader whether that voter was the leader.
	Site   string
	Leader bool
	// Voters is the raft voter set.
	Voters []string
	// Index and Term are the raft index and term of the table;
	// ConfigurationIndex the index that committed the voter set.
	Index, Term, ConfigurationIndex uint64
	// Table is every allocation, sorted by site.
	Table []site.Allocation

	table []byte // the state machine's snapshot (compact JSON)
}

type backupFile struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Site    string    `json:"site,omitempty"`
	Leader  bool      `json:"leader"`
	Voters  []string  `json:"voters"`
	Raft    struct {
		Index              uint64 `json:"index"`
		Term               uint64 `json:"term"`
		ConfigurationIndex uint64 `json:"configurationIndex"`
	} `json:"raft"`
	Sites  int             `json:"sites"`
	SHA256 string          `json:"sha256"`
	Table  json.RawMessage `json:"table"`
}

// Encode returns b as a backup file.
func (b Backup) Encode() ([]byte, error) {
	// The checksum covers the table's compact form, which the file's
	// indentation does not change.
	var table bytes.Buffer
	if err := json.Compact(&table, b.table); err != nil {
		return nil, fmt.Errorf("encoding backup: %w", err)
	}
	f := backupFile{Format: BackupFormat, Version: backupVersion, Created: b.Created.UTC(), Site: b.Site, Leader: b.Leader,
		Voters: b.Voters, Sites: len(b.Table), Table: table.Bytes()}
	f.Raft.Index, f.Raft.Term, f.Raft.ConfigurationIndex = b.Index, b.Term, b.ConfigurationIndex
	sum := sha256.Sum256(table.Bytes())
	f.SHA256 = hex.EncodeToString(sum[:])
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding backup: %w", err)
	}
	return append(out, '\n'), nil
}

// DecodeBackup decodes and checks a backup file's content.
func DecodeBackup(data []byte) (Backup, error) {
	bad := func(format string, args ...any) (Backup, error) {
		return Backup{}, fmt.Errorf("%w: %s", ErrBadBackup, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxBackupSize {
		return bad("%d bytes, more than the %d MiB a backup may hold", len(data), MaxBackupSize>>20)
	}
	var f backupFile
	if err := json.Unmarshal(data, &f); err != nil {
		return bad("it does not decode (truncated or damaged?): %v", err)
	}
	if f.Format != BackupFormat {
		return bad("format %q, want %q", f.Format, BackupFormat)
	}
	if f.Version != backupVersion {
		return bad("backup version %d, this agent reads %d: use a newer tfsite", f.Version, backupVersion)
	}
	var table bytes.Buffer
	if err := json.Compact(&table, f.Table); err != nil || len(f.Table) == 0 {
		return bad("no table")
	}
	if sum := sha256.Sum256(table.Bytes()); hex.EncodeToString(sum[:]) != f.SHA256 {
		return bad("the table's checksum does not match: the file was altered or damaged")
	}
	if err := checkVoters(f.Voters); err != nil {
		return bad("%v", err)
	}
	if f.Site != "" && !slices.Contains(f.Voters, f.Site) {
		return bad("taken on %q, which is not one of its voters", f.Site)
	}
	if f.Raft.Index == 0 || f.Raft.Term == 0 || f.Raft.ConfigurationIndex > f.Raft.Index {
		return bad("raft index %d, term %d, configuration index %d: index and term must be positive, the configuration no later than the index",
			f.Raft.Index, f.Raft.Term, f.Raft.ConfigurationIndex)
	}
	sites, _, err := decodeSnapshot(table.Bytes())
	if err != nil {
		return bad("%v", err)
	}
	if len(sites) != f.Sites {
		return bad("it says %d sites but its table holds %d", f.Sites, len(sites))
	}
	b := Backup{Created: f.Created, Site: f.Site, Leader: f.Leader, Voters: f.Voters,
		Index: f.Raft.Index, Term: f.Raft.Term, ConfigurationIndex: f.Raft.ConfigurationIndex, table: table.Bytes()}
	for site, r := range sites {
		if r.Owner == "" {
			return bad("site %q has no owner", site)
		}
		b.Table = append(b.Table, r.Alloc)
	}
	sort.Slice(b.Table, func(i, j int) bool { return b.Table[i].Site < b.Table[j].Site })
	return b, nil
}

// ReadBackupFile reads and decodes the backup file at path; errors name it.
func ReadBackupFile(path string) (Backup, error) {
	f, err := os.Open(path)
	if err != nil {
		return Backup{}, fmt.Errorf("reading backup: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBackupSize+1))
	if err != nil {
		return Backup{}, fmt.Errorf("reading backup %s: %w", path, err)
	}
	b, err := DecodeBackup(data)
	if err != nil {
		return Backup{}, fmt.Errorf("backup %s: %w", path, err)
	}
	return b, nil
}

// checkVoters checks a voter set read from a file.
func checkVoters(voters []string) error {
	if len(voters) == 0 {
		return errors.New("no voters")
	}
	var errs []error
	for i, v := range voters {
		if err := sitename.Validate(v); err != nil {
			errs = append(errs, fmt.Errorf("voters[%d]: %w", i, err))
		}
		if slices.Contains(voters[:i], v) {
			errs = append(errs, fmt.Errorf("voters[%d]: %q listed twice", i, v))
		}
	}
	return errors.Join(errs...)
}

// backupFromSnapshot builds a backup from a raft snapshot.
func backupFromSnapshot(meta *raft.SnapshotMeta, rc io.ReadCloser) (Backup, error) {
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxBackupSize+1))
	if err != nil {
		return Backup{}, fmt.Errorf("reading raft snapshot %s: %w", meta.ID, err)
	}
	if len(data) > MaxBackupSize {
		return Backup{}, fmt.Errorf("raft snapshot %s is larger than %d MiB", meta.ID, MaxBackupSize>>20)
	}
	var table bytes.Buffer
	if err := json.Compact(&table, data); err != nil {
		return Backup{}, fmt.Errorf("raft snapshot %s: %w", meta.ID, err)
	}
	sites, _, err := decodeSnapshot(table.Bytes())
	if err != nil {
		return Backup{}, fmt.Errorf("raft snapshot %s: %w", meta.ID, err)
	}
	b := Backup{Created: time.Now(), Index: meta.Index, Term: meta.Term, ConfigurationIndex: meta.ConfigurationIndex, table: table.Bytes()}
	for _, s := range meta.Configuration.Servers {
		if s.Suffrage == raft.Voter {
			b.Voters = append(b.Voters, string(s.ID))
		}
	}
	sort.Strings(b.Voters)
	for _, r := range sites {
		b.Table = append(b.Table, r.Alloc)
	}
	sort.Slice(b.Table, func(i, j int) bool { return b.Table[i].Site < b.Table[j].Site })
	return b, nil
}

// latestSnapshot opens the newest snapshot in snaps.
func latestSnapshot(snaps raft.SnapshotStore) (*raft.SnapshotMeta, io.ReadCloser, error) {
	list, err := snaps.List()
	if err != nil {
		return nil, nil, fmt.Errorf("listing raft snapshots: %w", err)
	}
	if len(list) == 0 {
		return nil, nil, errors.New("no raft snapshot")
	}
	return snaps.Open(list[0].ID)
}

// backup snapshots this voter's replica of the table (raft's user
// snapshot, which also compacts the log as raft's own snapshots do) and
// returns it as a backup file. A follower's replica may lag its leader by
// a heartbeat.
func (a *Allocator) backup(ctx context.Context) ([]byte, error) {
	if !a.voter || a.raft == nil {
		return nil, fmt.Errorf("%w: site %s holds no copy of the allocation table: take the backup on a voter (%s)", ErrNotVoter, a.cfg.Site, strings.Join(a.cfg.Voters, ", "))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	leader := a.raft.State() == raft.Leader
	f := a.raft.Snapshot()
	var meta *raft.SnapshotMeta
	var rc io.ReadCloser
	err := f.Error()
	switch {
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		return nil, fmt.Errorf("voter %s has applied nothing yet: nothing to back up", a.cfg.Site)
	case err != nil:
		return nil, fmt.Errorf("taking a raft snapshot on %s: %w", a.cfg.Site, err)
	}
	if meta, rc, err = f.Open(); err != nil {
		return nil, fmt.Errorf("opening the raft snapshot: %w", err)
	}
	b, err := backupFromSnapshot(meta, rc)
	if err != nil {
		return nil, err
	}
	b.Site, b.Leader = a.cfg.Site, leader
	a.log.Info("allocation table backed up", "sites", len(b.Table), "index", b.Index, "term", b.Term, "leader", leader)
	return b.Encode()
}

// Backup returns a backup file of this voter's replica of the allocation
// table (see DecodeBackup, Restore). ErrNotVoter on other sites.
func (a *Allocator) Backup(ctx context.Context) ([]byte, error) { return a.backup(ctx) }

// BackupRaftDir builds a backup from the newest raft snapshot in a stopped
// voter's raft dir (<stateDir>/raft, or where it was moved aside): the way
// to save what a voter with a damaged raft.db still holds. It holds the
// table as of that snapshot, not the entries logged after it.
func BackupRaftDir(dir string) ([]byte, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		return nil, fmt.Errorf("opening raft snapshots in %s: %w", dir, err)
	}
	meta, rc, err := latestSnapshot(snaps)
	if err != nil {
		return nil, fmt.Errorf("raft dir %s: %w", dir, err)
	}
	b, err := backupFromSnapshot(meta, rc)
	if err != nil {
		return nil, err
	}
	return b.Encode()
}
