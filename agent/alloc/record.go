package alloc

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/internal/atomicfile"
)

// Files in Config.StateDir.
const (
	recordFile = "allocation.json" // this site's committed allocation
	ownerFile  = "node-id"         // this node's identity (owner of its site)
	raftDir    = "raft"            // voters: raft log, stable store, snapshots
)

const recordVersion = 1

// localRecord is what a site keeps about itself; it survives restarts and
// is never rewritten with different values.
type localRecord struct {
	Version int             `json:"version"`
	Owner   string          `json:"owner"`
	Alloc   site.Allocation `json:"alloc"`
}

func decodeRecord(b []byte) (localRecord, error) {
	var r localRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding allocation record: %w", err)
	}
	if r.Version != recordVersion {
		return r, fmt.Errorf("allocation record version %d, this agent reads %d", r.Version, recordVersion)
	}
	if err := validOwner(r.Owner); err != nil {
		return r, fmt.Errorf("allocation record: %w", err)
	}
	if err := r.Alloc.Validate(); err != nil {
		return r, fmt.Errorf("allocation record: %w", err)
	}
	return r, nil
}

// ReadRecord returns the allocation recorded in stateDir, if any. Tests and
// tools (chaos checks, status of a stopped agent) use it.
func ReadRecord(stateDir string) (site.Allocation, bool, error) {
	r, found, err := readRecord(stateDir)
	return r.Alloc, found, err
}

// readRecord reads and decodes stateDir's local record; found is false when
// there is none.
func readRecord(stateDir string) (r localRecord, found bool, err error) {
	return atomicfile.Read(filepath.Join(stateDir, recordFile), "allocation record", "", decodeRecord)
}

func writeRecord(stateDir string, r localRecord) error {
	r.Version = recordVersion
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(stateDir, recordFile), append(b, '\n'))
}

func validOwner(s string) error {
	if len(s) != 32 {
		return fmt.Errorf("node id %q: want 32 hex digits", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("node id %q: want 32 hex digits", s)
	}
	return nil
}

// loadOrCreateOwner returns this node's identity, creating it on first start.
func loadOrCreateOwner(stateDir string) (string, error) {
	p := filepath.Join(stateDir, ownerFile)
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if err := validOwner(id); err != nil {
			return "", fmt.Errorf("%s: %w (delete it only if this node holds no allocation yet)", p, err)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading node id: %w", err)
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	if err := writeFileAtomic(p, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}

// writeFileAtomic writes data to path so that a crash leaves either the old
// or the new content (temp file, fsync, rename, fsync dir).
func writeFileAtomic(path string, data []byte) error { return atomicfile.Write(path, data, 0o600) }
