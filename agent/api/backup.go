package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// MaxBackupSize bounds a backup answer: alloc.MaxBackupSize, the largest
// backup an agent writes.
const MaxBackupSize = 64 << 20

// Backuper is implemented by a Backend that keeps a copy of the allocation
// table (the agent on a voter): GET /v1/backup answers with Backup's file.
// Other backends answer 501.
type Backuper interface {
	// Backup returns a backup file of the allocation table (JSON, see
	// alloc.DecodeBackup). Errors should wrap ErrConflict (this site holds
	// no copy) or ErrUnavailable where they apply.
	Backup(ctx context.Context) ([]byte, error)
}

// backupRoute serves GET /v1/backup.
func backupRoute(b Backend, log *slog.Logger) route {
	return route{"GET /v1/backup", func(r *http.Request) reply {
		bb, ok := b.(Backuper)
		if !ok {
			return errorReply(501, "this agent keeps no copy of the allocation table")
		}
		data, err := bb.Backup(r.Context())
		if err != nil {
			log.Warn("backup refused", "err", err)
			return errorReply(statusCode(err), err.Error())
		}
		log.Info("allocation table backed up", "bytes", len(data))
		return reply{code: 200, contentType: "application/json", body: data}
	}}
}

// Backup fetches GET /v1/backup: a backup file of the agent's copy of the
// allocation table, unchecked (alloc.DecodeBackup checks it).
func (c *Client) Backup(ctx context.Context) ([]byte, error) {
	body, err := c.doLimit(ctx, http.MethodGet, "/v1/backup", MaxBackupSize)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("reading the backup: %w", err)
	}
	return data, nil
}
