package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/api"
)

// TestBackupThroughTheAPI: a voter's agent answers GET /v1/backup with a
// backup of the table that decodes and holds every site; a non-voter
// refuses, naming the voters.
func TestBackupThroughTheAPI(t *testing.T) {
	if api.MaxBackupSize != alloc.MaxBackupSize {
		t.Fatalf("api.MaxBackupSize %d differs from alloc.MaxBackupSize %d", api.MaxBackupSize, alloc.MaxBackupSize)
	}
	l := newLab(t, "site-a")
	l.start("site-a", 1)
	l.start("site-b", 2)
	all := l.waitAll(60 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data, err := api.NewClient(l.sites["site-a"].cfg.APISocket).Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := alloc.DecodeBackup(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Table) != 2 || b.Site != "site-a" || !b.Leader {
		t.Fatalf("backup %+v", b)
	}
	for _, al := range b.Table {
		if st := all[al.Site]; st.Allocation == nil || st.Allocation.ASN != al.ASN || st.Allocation.Pod != al.Pod {
			t.Fatalf("backup holds %v, %s's status says %+v", al, al.Site, st.Allocation)
		}
	}
	_, err = api.NewClient(l.sites["site-b"].cfg.APISocket).Backup(ctx)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "take the backup on a voter (site-a)") {
		t.Fatalf("backup on a non-voter: %v", err)
	}
}
