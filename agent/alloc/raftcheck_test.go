package alloc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// writeTestStore fills a raft store at path with n log entries (spread over
// many pages) and a current term, and returns what it wrote.
func writeTestStore(t *testing.T, path string, n int) []*raft.Log {
	t.Helper()
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var logs []*raft.Log
	for i := 1; i <= n; i++ {
		logs = append(logs, &raft.Log{Index: uint64(i), Term: 3, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 100+i%700), AppendedAt: time.Unix(int64(i), 0)})
	}
	// Several transactions, so the file has freed pages and a real freelist.
	for i := 0; i < len(logs); i += 50 {
		if err := s.StoreLogs(logs[i:min(i+50, len(logs))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetUint64(keyCurrentTerm, 3); err != nil {
		t.Fatal(err)
	}
	return logs
}

// storeIntact reports whether the store at path holds exactly logs and term 3.
func storeIntact(t *testing.T, path string, logs []*raft.Log) bool {
	t.Helper()
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatalf("a store that passed the check does not open: %v", err)
	}
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	term, _ := s.GetUint64(keyCurrentTerm)
	if first != 1 || last != uint64(len(logs)) || term != 3 {
		return false
	}
	for _, want := range logs {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil || got.Term != want.Term || !bytes.Equal(got.Data, want.Data) {
			return false
		}
	}
	return true
}

// usedSize is how far the store's pages reach into its file.
func usedSize(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return int(n)
}

func copyFile(t *testing.T, from, to string) []byte {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

func assertCorrupt(t *testing.T, path, what string) {
	t.Helper()
	err := checkRaftStore(path)
	if !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("%s: check = %v, want ErrCorruptStore", what, err)
	}
	if !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%s: error is not one line naming the file: %q", what, err)
	}
	if _, err := openRaftStore(path); !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("%s: openRaftStore = %v, want ErrCorruptStore", what, err)
	}
}

// TestDamagedRaftStoreIsAnError: truncated, garbled and raft-invalid stores
// are refused with ErrCorruptStore naming the file. Before checkRaftStore a
// truncated file killed the process with SIGBUS and a garbled one with a
// bbolt panic ("invalid freelist page").
func TestDamagedRaftStoreIsAnError(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	logs := writeTestStore(t, good, 400)
	if err := checkRaftStore(good); err != nil {
		t.Fatalf("intact store refused: %v", err)
	}
	if !storeIntact(t, good, logs) {
		t.Fatal("test store does not read back")
	}
	orig, _ := os.ReadFile(good)
	page := os.Getpagesize()
	used := usedSize(t, good) // bbolt grows the file ahead of its pages
	t.Logf("store: %d bytes, pages up to %d", len(orig), used)
	damage := map[string]func([]byte) []byte{
		"truncated to half":         func(b []byte) []byte { return b[:used/2/page*page] },
		"truncated to the metas":    func(b []byte) []byte { return b[:2*page] },
		"truncated inside a page":   func(b []byte) []byte { return b[:used-page/2] },
		"truncated inside the meta": func(b []byte) []byte { return b[:100] },
		"both metas garbled": func(b []byte) []byte {
			for i := 16; i < 2*page; i += 3 {
				b[i] ^= 0x5a
			}
			return b
		},
		"everything after the metas garbled": func(b []byte) []byte {
			for i := 2 * page; i < len(b); i++ {
				b[i] = byte(i * 7)
			}
			return b
		},
		"random bytes": func(b []byte) []byte {
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		},
	}
	for name, f := range damage {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".db")
		if err := os.WriteFile(p, f(bytes.Clone(orig)), 0o600); err != nil {
			t.Fatal(err)
		}
		assertCorrupt(t, p, name)
	}

	// Valid bbolt, invalid for raft: what raft would panic on later.
	raftDamage := map[string]func(tx *bolt.Tx) error{
		"undecodable entry": func(tx *bolt.Tx) error { return tx.Bucket(bucketLogs).Put(u64(7), []byte{9, 9, 9}) },
		"entry under another index": func(tx *bolt.Tx) error {
			return tx.Bucket(bucketLogs).Put(u64(7), encodeLog(&raft.Log{Index: 8, Term: 3}))
		},
		"gap in the log":       func(tx *bolt.Tx) error { return tx.Bucket(bucketLogs).Delete(u64(200)) },
		"short current term":   func(tx *bolt.Tx) error { return tx.Bucket(bucketStable).Put(keyCurrentTerm, []byte{1, 2, 3}) },
		"stable bucket gone":   func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketStable) },
		"log key not an index": func(tx *bolt.Tx) error { return tx.Bucket(bucketLogs).Put([]byte("x"), encodeLog(&raft.Log{Index: 1})) },
	}
	for name, f := range raftDamage {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".db")
		copyFile(t, good, p)
		db, err := bolt.Open(p, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(f); err != nil {
			t.Fatal(err)
		}
		db.Close()
		assertCorrupt(t, p, name)
	}
}

// TestEveryGarbledPageIsRefusedOrUnused garbles each page of a store in
// turn (the freelist page, branch, leaf and overflow pages, free pages):
// the check must never crash, and a store it lets through must read back
// exactly as written (the garbled page was a free one).
func TestEveryGarbledPageIsRefusedOrUnused(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	logs := writeTestStore(t, good, 400)
	orig, _ := os.ReadFile(good)
	page := os.Getpagesize()
	refused := 0
	pages := usedSize(t, good) / page
	for i := 2; i < pages; i++ {
		for k, pattern := range []func(int) byte{
			func(j int) byte { return byte(j*131 + i) }, // garbage
			func(int) byte { return 0xff },              // counts at their maximum
		} {
			// A new file each time: a store that made bbolt panic in
			// Open stays locked (see viewRaftStore).
			p := filepath.Join(dir, fmt.Sprintf("garbled-%d-%d.db", i, k))
			b := bytes.Clone(orig)
			for j := i * page; j < (i+1)*page; j++ {
				b[j] = pattern(j)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			err := checkRaftStore(p)
			switch {
			case errors.Is(err, ErrCorruptStore):
				refused++
			case err != nil:
				t.Fatalf("page %d garbled: %v, want ErrCorruptStore or nil", i, err)
			case !storeIntact(t, p, logs):
				t.Fatalf("page %d garbled: check passed but the store does not read back", i)
			}
		}
	}
	t.Logf("%d of %d garbled pages refused (the others were free)", refused, 2*(pages-2))
	if refused < pages/2 {
		t.Fatalf("only %d garbled pages refused", refused)
	}
}

func TestMissingOrEmptyStoreIsNew(t *testing.T) {
	dir := t.TempDir()
	if err := checkRaftStore(filepath.Join(dir, "none.db")); err != nil {
		t.Fatalf("missing store: %v", err)
	}
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if err := checkRaftStore(empty); err != nil {
		t.Fatalf("empty store: %v", err)
	}
}

// BenchmarkCheckRaftStore: what the check adds to a voter's start, for a
// store of 10240 entries (raft's trailing log) of 2 KB each, ~24 MB.
func BenchmarkCheckRaftStore(b *testing.B) {
	path := filepath.Join(b.TempDir(), "raft.db")
	s, err := openRaftStore(path)
	if err != nil {
		b.Fatal(err)
	}
	var logs []*raft.Log
	for i := 1; i <= 10240; i++ {
		logs = append(logs, &raft.Log{Index: uint64(i), Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 2048)})
	}
	if err := s.StoreLogs(logs); err != nil {
		b.Fatal(err)
	}
	s.Close()
	for b.Loop() {
		if err := checkRaftStore(path); err != nil {
			b.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	b.ReportMetric(float64(fi.Size())/(1<<20), "MB")
}
