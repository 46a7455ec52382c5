package alloc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/site"
)

// backupOf takes a backup on voter v and decodes it.
func backupOf(t *testing.T, v *testSite) alloc.Backup {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data, err := v.a.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := alloc.DecodeBackup(data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tableOf(t *testing.T, s *testSite) []site.Allocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	table, err := s.a.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// TestBackupWipeRestoreKeepsEveryAllocation: a lone voter's table is backed
// up, its raft dir wiped (refused: ErrStoreLost), the backup restored: the
// table is identical, owners included (every site re-asserts and keeps its
// values, none is a conflict), and a site allocated after the backup keeps
// its values too.
func TestBackupWipeRestoreKeepsEveryAllocation(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	seeds := []string{v.gossip()}
	s1 := startSite(t, "s1", "", voters, seeds)
	s2 := startSite(t, "s2", "", voters, seeds)
	waitAllocated(t, 30*time.Second, v, s1, s2)
	before := tableOf(t, v)
	b := backupOf(t, v)
	if !slices.Equal(b.Table, before) || b.Site != "v" || !b.Leader || !slices.Equal(b.Voters, voters) {
		t.Fatalf("backup %+v, table %v", b, before)
	}
	late := startSite(t, "late", "", voters, seeds) // allocated after the backup
	waitAllocated(t, 30*time.Second, late)
	after := tableOf(t, v)
	for _, x := range []*testSite{late, s1, s2, v} {
		x.stop()
	}

	if err := os.RemoveAll(filepath.Join(v.dir, "raft")); err != nil {
		t.Fatal(err)
	}
	if err := openAllocator(t, "v", v.dir, voters); !errors.Is(err, alloc.ErrStoreLost) {
		t.Fatalf("wiped lone voter: %v, want ErrStoreLost", err)
	}
	if err := alloc.Restore(v.dir, b); err != nil {
		t.Fatal(err)
	}
	v = v.restart(voters, nil)
	waitPhase(t, v, alloc.PhaseAllocated, 30*time.Second) // its own values were in the backup
	if got := tableOf(t, v); !slices.Equal(got, before) {
		t.Fatalf("restored table:\n%v\nwant\n%v", got, before)
	}
	seeds = []string{v.gossip()}
	s1 = s1.restart(voters, seeds)
	s2 = s2.restart(voters, seeds)
	late = late.restart(voters, seeds)
	for _, x := range []*testSite{v, s1, s2, late} {
		waitPhase(t, x, alloc.PhaseAllocated, 30*time.Second)
	}
	if got := tableOf(t, v); !slices.Equal(got, after) {
		t.Fatalf("table once the sites re-asserted:\n%v\nwant\n%v", got, after)
	}
	n := startSite(t, "n", "", voters, seeds)
	waitAllocated(t, 30*time.Second, n)
	checkRecords(t, v, s1, s2, late, n)
}

// TestRestoreOnOneVoterTheOthersCatchUp: every voter of three lost its
// raft dir; the backup is restored on one, the others start without theirs
// (they held state, so they do not bootstrap) and catch up from it.
func TestRestoreOnOneVoterTheOthersCatchUp(t *testing.T) {
	voters := []string{"v1", "v2", "v3"}
	v1 := startSite(t, "v1", "", voters, nil)
	v2 := startSite(t, "v2", "", voters, []string{v1.gossip()})
	v3 := startSite(t, "v3", "", voters, []string{v1.gossip()})
	s := startSite(t, "s", "", voters, []string{v1.gossip()})
	waitAllocated(t, 30*time.Second, v1, v2, v3, s)
	want := tableOf(t, s)
	b := backupOf(t, v2) // any voter's replica will do once it is caught up
	for !slices.Equal(b.Table, want) {
		time.Sleep(100 * time.Millisecond)
		b = backupOf(t, v2)
	}
	for _, x := range []*testSite{s, v1, v2, v3} {
		x.stop()
		os.Rename(filepath.Join(x.dir, "raft"), filepath.Join(x.dir, "raft.lost"))
	}
	if err := alloc.Restore(v1.dir, b); err != nil {
		t.Fatal(err)
	}
	v1 = v1.restart(voters, nil)
	v2 = v2.restart(voters, []string{v1.gossip()})
	v3 = v3.restart(voters, []string{v1.gossip()})
	s = s.restart(voters, []string{v1.gossip()})
	for _, x := range []*testSite{v1, v2, v3, s} {
		waitPhase(t, x, alloc.PhaseAllocated, 60*time.Second)
	}
	if got := tableOf(t, s); !slices.Equal(got, want) {
		t.Fatalf("table after the restore:\n%v\nwant\n%v", got, want)
	}
	for _, v := range []*testSite{v2, v3} {
		deadline := time.Now().Add(30 * time.Second)
		for got := backupOf(t, v).Table; !slices.Equal(got, want); got = backupOf(t, v).Table {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not catch up: %v", v.name, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestLoneVoterWithADamagedStoreRestoresItsSnapshot: the whole way out for
// a lone voter whose raft.db is damaged and that has no backup file: the
// agent refuses to start, the raft dir is moved aside as the error says, a
// backup is made from its newest raft snapshot and restored.
func TestLoneVoterWithADamagedStoreRestoresItsSnapshot(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	waitAllocated(t, 30*time.Second, v, s)
	want := tableOf(t, v)
	backupOf(t, v) // a raft snapshot, as raft takes every 1024 entries
	s.stop()
	v.stop()
	raftDir := filepath.Join(v.dir, "raft")
	os.WriteFile(filepath.Join(raftDir, "raft.db"), []byte(strings.Repeat("garbage", 5000)), 0o600)
	if err := openAllocator(t, "v", v.dir, voters); !errors.Is(err, alloc.ErrCorruptStore) {
		t.Fatalf("damaged store: %v", err)
	}
	if err := os.Rename(raftDir, raftDir+".damaged"); err != nil {
		t.Fatal(err)
	}
	data, err := alloc.BackupRaftDir(raftDir + ".damaged")
	if err != nil {
		t.Fatal(err)
	}
	b, err := alloc.DecodeBackup(data)
	if err != nil || !slices.Equal(b.Table, want) || b.Site != "" {
		t.Fatalf("backup from the snapshot: %+v, %v", b, err)
	}
	if err := alloc.Restore(v.dir, b); err != nil {
		t.Fatal(err)
	}
	v = v.restart(voters, nil)
	s = s.restart(voters, []string{v.gossip()})
	waitPhase(t, v, alloc.PhaseAllocated, 30*time.Second)
	waitPhase(t, s, alloc.PhaseAllocated, 30*time.Second)
	if got := tableOf(t, v); !slices.Equal(got, want) {
		t.Fatalf("restored table %v, want %v", got, want)
	}
	if _, err := alloc.BackupRaftDir(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("backup from a missing raft dir")
	}
}

// TestRestoreRefuses: a restore never overwrites raft state, never runs
// under a running agent, and never takes another fleet's table.
func TestRestoreRefuses(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	waitAllocated(t, 30*time.Second, v)
	b := backupOf(t, v)
	if err := alloc.Restore(v.dir, b); !errors.Is(err, alloc.ErrRestoreRefused) || !strings.Contains(err.Error(), "stop the agent") {
		t.Fatalf("restore under a running voter: %v", err)
	}
	v.stop()
	if err := alloc.Restore(v.dir, b); !errors.Is(err, alloc.ErrRestoreRefused) || !strings.Contains(err.Error(), "holds raft state") {
		t.Fatalf("restore over raft state: %v", err)
	}
	// Another fleet's voter "v" holds other values for this site.
	other := startSite(t, "v", "", voters, nil, func(c *alloc.Config) { c.Pools.ASNs[0].First = 65000 })
	waitAllocated(t, 30*time.Second, other)
	ob := backupOf(t, other)
	other.stop()
	dir := copyDir(t, v.dir)
	os.RemoveAll(filepath.Join(dir, "raft"))
	if err := alloc.Restore(dir, ob); !errors.Is(err, alloc.ErrRestoreRefused) || !strings.Contains(err.Error(), "another fleet") {
		t.Fatalf("restore of another fleet's table: %v", err)
	}
	if err := alloc.RestoreEmpty(dir, []string{"a", "b"}); !errors.Is(err, alloc.ErrRestoreRefused) || !strings.Contains(err.Error(), "not a voter") {
		t.Fatalf("restore for voters without this site: %v", err)
	}
	// A damaged raft.db is moved aside first, not restored over.
	os.MkdirAll(filepath.Join(dir, "raft"), 0o700)
	os.WriteFile(filepath.Join(dir, "raft", "raft.db"), []byte(strings.Repeat("garbage", 5000)), 0o600)
	if err := alloc.Restore(dir, b); !errors.Is(err, alloc.ErrRestoreRefused) || !strings.Contains(err.Error(), "move the raft dir aside") {
		t.Fatalf("restore over a damaged store: %v", err)
	}
}

// TestRestoreEmptyStartsANewTableOnPurpose: without a backup, the operator
// starts an empty table on purpose; the voter and its sites re-assert and
// keep their values.
func TestRestoreEmptyStartsANewTableOnPurpose(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	waitAllocated(t, 30*time.Second, v, s)
	before := tableOf(t, v)
	s.stop()
	v.stop()
	os.RemoveAll(filepath.Join(v.dir, "raft"))
	if err := alloc.RestoreEmpty(v.dir, voters); err != nil {
		t.Fatal(err)
	}
	v = v.restart(voters, nil)
	s = s.restart(voters, []string{v.gossip()})
	waitPhase(t, v, alloc.PhaseAllocated, 30*time.Second)
	waitPhase(t, s, alloc.PhaseAllocated, 30*time.Second)
	if got := tableOf(t, v); !slices.Equal(got, before) {
		t.Fatalf("table after re-asserting: %v, want %v", got, before)
	}
}
