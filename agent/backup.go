package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/api"
)

// AllocStateDir is where the allocator keeps its files (node id, record,
// raft dir on voters), relative to the agent's state dir: what `tfsite
// restore` writes into.
const AllocStateDir = "alloc"

// Backup implements api.Backuper: a backup file of this voter's replica of
// the allocation table (alloc.Allocator.Backup).
func (a *Agent) Backup(ctx context.Context) ([]byte, error) {
	a.mu.Lock()
	allocator := a.alloc
	a.mu.Unlock()
	if allocator == nil {
		return nil, fmt.Errorf("%w: the agent is not running the allocator yet (phase %s)", api.ErrUnavailable, a.Status(ctx).Phase)
	}
	data, err := allocator.Backup(ctx)
	if errors.Is(err, alloc.ErrNotVoter) {
		return nil, fmt.Errorf("%w: %v", api.ErrConflict, err)
	}
	return data, err
}
