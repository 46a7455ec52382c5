package alloc_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/site"
)

// Real raft voters and gossip on loopback (helpers in cluster_test.go).

// openAllocator runs alloc.New on a state dir as a restarted agent would
// (without running it), and closes what it opened.
func openAllocator(t *testing.T, site, dir string, voters []string) error {
	t.Helper()
	ac := alloc.Default()
	ac.Site, ac.Voters, ac.StateDir, ac.Keys = site, voters, dir, [][]byte{gossipKey}
	ac.BindAddr = netip.MustParseAddrPort("127.0.0.1:0")
	a, err := alloc.New(ac, noPeers{}, logger(t))
	if err == nil {
		a.Close()
	}
	return err
}

type noPeers struct{}

func (noPeers) Peers() []site.Peer         { return nil }
func (noPeers) Subscribe() <-chan struct{} { return make(chan struct{}) }

// copyDir copies a stopped site's state dir.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestLoneVoterRefusesANewTableAfterLosingItsStore: a lone voter whose
// raft.db is gone or empty, but whose state dir shows it held the table,
// refuses to start (it used to bootstrap a new, empty table and hand out
// the held values again), naming the store and the way out.
func TestLoneVoterRefusesANewTableAfterLosingItsStore(t *testing.T) {
	voters := []string{"v"}
	v := startSite(t, "v", "", voters, nil)
	s := startSite(t, "s", "", voters, []string{v.gossip()})
	waitAllocated(t, 30*time.Second, v, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := v.a.Backup(ctx); err != nil { // leaves a raft snapshot in the raft dir
		t.Fatal(err)
	}
	s.stop()
	v.stop()
	if _, err := os.Stat(filepath.Join(v.dir, "raft-marker")); err != nil {
		t.Fatalf("voter wrote no marker: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "raft-marker")); err == nil {
		t.Fatal("a non-voter wrote a raft marker")
	}
	db := func(dir string) string { return filepath.Join(dir, "raft", "raft.db") }
	rm := func(names ...string) func(string) {
		return func(dir string) {
			for _, n := range names {
				if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for name, c := range map[string]struct {
		lose     func(dir string)
		evidence string
	}{
		"raft.db deleted":           {rm("raft/raft.db"), "marker"},
		"raft.db emptied":           {func(dir string) { os.Truncate(db(dir), 0) }, "marker"},
		"raft dir moved aside":      {func(dir string) { os.Rename(filepath.Join(dir, "raft"), filepath.Join(dir, "raft.old")) }, "marker"},
		"marker only":               {rm("raft/raft.db", "raft/snapshots", "allocation.json"), "marker"},
		"record only (old version)": {rm("raft/raft.db", "raft/snapshots", "raft-marker"), "allocation record"},
		"snapshots only":            {rm("raft/raft.db", "raft-marker", "allocation.json"), "raft snapshot(s)"},
	} {
		dir := copyDir(t, v.dir)
		c.lose(dir)
		err := openAllocator(t, "v", dir, voters)
		if !errors.Is(err, alloc.ErrStoreLost) {
			t.Fatalf("%s: New = %v, want ErrStoreLost", name, err)
		}
		for _, want := range []string{db(dir), c.evidence, "tfsite restore", "--empty"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error does not say %q: %v", name, want, err)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
	// A state dir without any of it is a new voter: it bootstraps.
	if err := openAllocator(t, "v", t.TempDir(), voters); err != nil {
		t.Fatalf("new voter: %v", err)
	}
}

// TestDamagedStoreNamesTheWayOut: a damaged raft.db stops the voter with
// ErrCorruptStore naming the file; the way out differs for a lone voter
// (restore) and a voter of several (catch up). It crashed the process
// before (SIGBUS, or a bbolt panic).
func TestDamagedStoreNamesTheWayOut(t *testing.T) {
	v := startSite(t, "v", "", []string{"v"}, nil)
	waitAllocated(t, 30*time.Second, v)
	v.stop()
	db := filepath.Join(v.dir, "raft", "raft.db")
	for name, damage := range map[string]func(){
		"truncated": func() { os.Truncate(db, 2*int64(os.Getpagesize())+100) },
		"garbled": func() {
			b, _ := os.ReadFile(db)
			for i := 2 * os.Getpagesize(); i < len(b); i++ {
				b[i] = byte(i * 7)
			}
			os.WriteFile(db, b, 0o600)
		},
	} {
		damage()
		for _, voters := range [][]string{{"v"}, {"v", "w", "x"}} {
			err := openAllocator(t, "v", v.dir, voters)
			if !errors.Is(err, alloc.ErrCorruptStore) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%s, voters %v: New = %q, want one line wrapping ErrCorruptStore", name, voters, err)
			}
			want := []string{db, "mv " + filepath.Join(v.dir, "raft"), "tfsite restore"}
			if len(voters) > 1 {
				want = []string{db, "mv " + filepath.Join(v.dir, "raft"), "catches up from the other voters (w, x)"}
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s, voters %v: error does not say %q: %v", name, voters, w, err)
				}
			}
		}
	}
}

// TestDamagedSnapshotIsAnError: raft snapshots that do not load stop the
// voter like a damaged raft.db.
func TestDamagedSnapshotIsAnError(t *testing.T) {
	v := startSite(t, "v", "", []string{"v"}, nil)
	waitAllocated(t, 30*time.Second, v)
	backupOf(t, v) // leaves a raft snapshot
	v.stop()
	states, _ := filepath.Glob(filepath.Join(v.dir, "raft", "snapshots", "*", "state.bin"))
	if len(states) == 0 {
		t.Fatal("no raft snapshot")
	}
	for _, p := range states {
		os.WriteFile(p, []byte(`{"version":1,"records":[{"alloc":{"site":"x"}}]}`), 0o600)
	}
	err := openAllocator(t, "v", v.dir, []string{"v"})
	t.Log(err)
	if !errors.Is(err, alloc.ErrCorruptStore) || !strings.Contains(err.Error(), filepath.Join(v.dir, "raft")) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("damaged snapshot: %v, want one line wrapping ErrCorruptStore naming the raft dir", err)
	}
}

// TestVoterThatLostItsStoreCatchesUpWithoutBootstrapping: a voter of three
// whose raft dir is gone does not bootstrap a configuration of its own (so,
// alone, it never even stands for election: it used to), says so in its
// status, and catches up from the others once they are back: its replica
// then holds the whole table.
func TestVoterThatLostItsStoreCatchesUpWithoutBootstrapping(t *testing.T) {
	voters := []string{"v1", "v2", "v3"}
	v1 := startSite(t, "v1", "", voters, nil)
	v2 := startSite(t, "v2", "", voters, []string{v1.gossip()})
	v3 := startSite(t, "v3", "", voters, []string{v1.gossip()})
	s := startSite(t, "s", "", voters, []string{v1.gossip()})
	waitAllocated(t, 30*time.Second, v1, v2, v3, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want, err := v1.a.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*testSite{s, v1, v2, v3} {
		x.stop()
	}
	raftDir := filepath.Join(v3.dir, "raft")
	if err := os.Rename(raftDir, raftDir+".damaged"); err != nil {
		t.Fatal(err)
	}
	v3 = v3.restart(voters, nil)
	// Alone, with no configuration: a follower that never stands for
	// election (a bootstrapped one would turn candidate within a heartbeat
	// timeout, 0.5 s here).
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		st := v3.a.Status()
		if st.RaftState != "follower" {
			t.Fatalf("v3 without its store is %s: it bootstrapped a configuration of its own", st.RaftState)
		}
		if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "lost its raft store") }) {
			t.Fatalf("v3's status does not report the lost store: %v", st.Problems)
		}
	}
	v1.restart(voters, []string{v3.gossip()})
	v2.restart(voters, []string{v3.gossip()})
	// Caught up: the problem is gone and v3's own replica (its backup)
	// holds the whole table.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := v3.a.Status()
		if len(st.Problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v3 did not catch up: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		data, err := v3.a.Backup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := alloc.DecodeBackup(data)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(b.Table, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v3's replica after catching up:\n%v\nwant\n%v", b.Table, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitPhase(t, v3, alloc.PhaseAllocated, 30*time.Second)
}
