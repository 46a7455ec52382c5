package alloc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// checkRaftStore validates the raft store file at path before the agent opens
// it for writing, so that a damaged file is a clear error (wrapping
// ErrCorruptStore) and never a crash.
//
// bbolt trusts its file: a truncated or garbled raft.db makes it panic
// ("invalid freelist page ...", "pgid above high water mark") or fault on a
// page mapped past the end of the file (SIGBUS), which Go cannot recover
// and which took the agent down with a stack trace. So the file is first
// opened read-only (shared lock; the metas' checksums are verified by bbolt,
// and the freelist is loaded) and read in full on a goroutine of its own that
// turns memory faults into panics (debug.SetPanicOnFault) and recovers every
// panic:
//
//   - the pages the metas claim must lie within the file (tx.Size), so no
//     later access of a page can run past the end of the file;
//   - every bucket, key and value is read (which touches every branch, leaf
//     and overflow page), every raft log entry decodes, matches its key and
//     the indexes run without a gap (raft panics on a missing entry), and
//     the stable store's terms are 8 bytes;
//   - then bbolt's own consistency check (tx.Check: freed pages still in use,
//     pages referenced twice, unreachable pages, key order). It runs on a
//     goroutine bbolt starts, which the fault handler does not cover; it
//     only reads the freelist and the pages the walk above has already read
//     without a fault.
//
// What this cannot catch: a freelist page whose count field is garbled into
// its overflow mark (0xFFFF) followed by a count in the billions makes bbolt
// allocate that much at once, and an allocation of terabytes is a fatal
// out-of-memory error in Go rather than a panic (counts past 2^63, or past
// what Go can allocate at all, are panics and are caught). A missing or
// empty file is no error: it is a new (or lost) store, which openRaft
// handles.
func checkRaftStore(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raft store: %w", err)
	}
	if fi.Size() == 0 {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				errc <- corruptStore(path, panicError(r))
			}
		}()
		errc <- inspectRaftStore(path, fi.Size())
	}()
	return <-errc
}

// errStoreBusy: another process holds the raft store's lock.
var errStoreBusy = errors.New("the raft store is locked by another process: is another agent using this state dir?")

// inspectRaftStore does checkRaftStore's work; it may panic or fault on a
// damaged file (the caller recovers).
func inspectRaftStore(path string, size int64) error {
	// First without the freelist: the extent of the pages, then every page
	// of the tree and what raft will read from it.
	err := viewRaftStore(path, false, func(tx *bolt.Tx) error {
		if tx.Size() > size {
			return fmt.Errorf("truncated: its pages reach %d bytes but the file holds %d", tx.Size(), size)
		}
		if err := readAll(tx.Cursor()); err != nil {
			return err
		}
		logs, stable := tx.Bucket(bucketLogs), tx.Bucket(bucketStable)
		if (logs == nil) != (stable == nil) {
			// openRaftStore creates both in one transaction.
			return errors.New("one of its two buckets is missing")
		}
		if logs == nil {
			return nil // never used: opened once, before the buckets were made
		}
		if err := checkLogs(logs); err != nil {
			return err
		}
		return checkStable(stable)
	})
	if err != nil {
		return err
	}
	// Then load the freelist, here where faults are recovered (tx.Check
	// would load it on its own goroutine), and run bbolt's check.
	return viewRaftStore(path, true, func(tx *bolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			if len(errs) < 3 {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt consistency check: %s", strings.Join(errs, "; "))
		}
		return nil
	})
}

// viewRaftStore opens the store read-only (loading its freelist or not) and
// runs fn in a read transaction. Errors other than a lock held elsewhere or
// the file's own (permissions) mean the file is damaged.
func viewRaftStore(path string, freelist bool, fn func(*bolt.Tx) error) error {
	// A panic inside bolt.Open (a garbled freelist) leaks its mapping of
	// the file, and with it the file's lock, until the process ends: moot,
	// since a damaged store ends the agent.
	opts := &bolt.Options{ReadOnly: true, PreLoadFreelist: freelist, Timeout: 2 * time.Second}
	db, err := bolt.Open(path, 0o600, opts)
	var pe *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%s: %w", path, errStoreBusy)
	case errors.As(err, &pe):
		return fmt.Errorf("raft store: %w", err)
	case err != nil:
		return corruptStore(path, err)
	}
	defer db.Close()
	if err := db.View(fn); err != nil {
		return corruptStore(path, err)
	}
	return nil
}

// readAll reads every key and value under c (so every page they live on),
// descending into nested buckets.
func readAll(c *bolt.Cursor) error {
	for k, v := c.First(); k != nil; k, v = c.Next() {
		crc32.ChecksumIEEE(k)
		if v != nil {
			crc32.ChecksumIEEE(v)
			continue
		}
		b := c.Bucket().Bucket(k)
		if b == nil {
			return fmt.Errorf("bucket %q cannot be opened", k)
		}
		if err := readAll(b.Cursor()); err != nil {
			return err
		}
	}
	return nil
}

// checkLogs decodes every raft log entry and checks that the indexes follow
// each other.
func checkLogs(b *bolt.Bucket) error {
	var prev uint64
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			return fmt.Errorf("raft log key %x is not an index", k)
		}
		idx := binary.BigEndian.Uint64(k)
		l, err := decodeLog(v)
		if err != nil {
			return fmt.Errorf("raft log entry %d: %w", idx, err)
		}
		if l.Index != idx {
			return fmt.Errorf("raft log entry under index %d holds index %d", idx, l.Index)
		}
		if prev != 0 && idx != prev+1 {
			return fmt.Errorf("raft log jumps from entry %d to %d", prev, idx)
		}
		prev = idx
	}
	return nil
}

// checkStable checks the raft stable store's terms: raft reads them as
// 8-byte integers.
func checkStable(b *bolt.Bucket) error {
	for _, k := range [][]byte{keyCurrentTerm, []byte("LastVoteTerm")} {
		if v := b.Get(k); v != nil && len(v) != 8 {
			return fmt.Errorf("raft stable key %q holds %d bytes, want 8", k, len(v))
		}
	}
	return nil
}

// panicError describes what a recovered panic of bbolt's says about the file.
func panicError(r any) error {
	if _, fault := r.(interface{ Addr() uintptr }); fault {
		return errors.New("reading a page faulted: the file is truncated or its pages are garbled")
	}
	return fmt.Errorf("bbolt gave up reading it: %v", r)
}

// corruptStore is the error for a damaged raft store file: one line naming
// it. openRaft adds the way out.
func corruptStore(path string, err error) error {
	return fmt.Errorf("%w: %s (%s)", ErrCorruptStore, path, strings.ReplaceAll(err.Error(), "\n", "; "))
}
