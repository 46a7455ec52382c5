package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// backupBackend is a tableBackend that keeps a table copy (a voter's agent).
type backupBackend struct {
	tableBackend
	data []byte
	err  error
}

func (b *backupBackend) Backup(context.Context) ([]byte, error) { return b.data, b.err }

func TestBackupOverTheSocket(t *testing.T) {
	file := []byte(`{"format": "tfsite-allocation-backup"}` + "\n")
	b := &backupBackend{data: file}
	_, sock := startServer(t, b)
	c := NewClient(sock)
	ctx := context.Background()
	got, err := c.Backup(ctx)
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("backup = %q, %v; want the backend's bytes", got, err)
	}

	b.data, b.err = nil, fmt.Errorf("%w: site s holds no copy of the allocation table: take the backup on a voter (v)", ErrConflict)
	if _, err := c.Backup(ctx); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "take the backup on a voter") {
		t.Fatalf("backup on a non-voter: %v", err)
	}

	// Larger than a backup may be: refused, not read on and on.
	b.data, b.err = bytes.Repeat([]byte(" "), MaxBackupSize+10), nil
	if _, err := c.Backup(ctx); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized backup: %v", err)
	}
}

func TestBackupFromABackendWithoutTable(t *testing.T) {
	_, sock := startServer(t, &tableBackend{status: sampleStatus()})
	if _, err := NewClient(sock).Backup(context.Background()); err == nil || !strings.Contains(err.Error(), "501") {
		t.Fatalf("backup from a backend without a table: %v", err)
	}
}
