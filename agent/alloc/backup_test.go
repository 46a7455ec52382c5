package alloc

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/site"
)

// testBackup is a backup of allocA and allocB as a voter would take it.
func testBackup(t testing.TB) Backup {
	t.Helper()
	f := newFSM()
	applyCmd(t, f, 5, command{Op: opAssign, Assign: []assignment{{Owner: ownerA, Alloc: allocA}, {Owner: ownerB, Alloc: allocB}}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return Backup{Created: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Site: "a", Leader: true, Voters: []string{"a", "b", "c"},
		Index: 5, Term: 2, ConfigurationIndex: 1, Table: []site.Allocation{allocA, allocB}, table: []byte(snap.(fsmSnapshot))}
}

func TestBackupRoundTrip(t *testing.T) {
	want := testBackup(t)
	data, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBackup(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// Readable as JSON by the operator's tools.
	var v struct {
		Format string `json:"format"`
		Sites  int    `json:"sites"`
		Table  struct {
			Records []struct {
				Alloc site.Allocation `json:"alloc"`
			} `json:"records"`
		} `json:"table"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.Format != BackupFormat || v.Sites != 2 || v.Table.Records[1].Alloc != allocB {
		t.Fatalf("backup JSON = %+v (%v)", v, err)
	}
}

func TestDecodeBackupRefusesDamage(t *testing.T) {
	good, err := testBackup(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	// edit changes the decoded file and re-encodes it with a matching
	// checksum, so that what is checked is the content, not the checksum.
	edit := func(f func(*backupFile)) []byte {
		var bf backupFile
		if err := json.Unmarshal(good, &bf); err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		json.Compact(&compact, bf.Table)
		bf.Table = compact.Bytes()
		f(&bf)
		var b Backup
		b.Created, b.Site, b.Leader, b.Voters = bf.Created, bf.Site, bf.Leader, bf.Voters
		b.Index, b.Term, b.ConfigurationIndex, b.table = bf.Raft.Index, bf.Raft.Term, bf.Raft.ConfigurationIndex, bf.Table
		b.Table = make([]site.Allocation, bf.Sites) // Encode counts them
		out, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":                {nil, "does not decode"},
		"truncated":            {good[:len(good)/2], "does not decode"},
		"truncated by a byte":  {good[:len(good)-3], "does not decode"},
		"not a backup":         {[]byte(`{"site": "x"}`), "format"},
		"raft snapshot alone":  {[]byte(`{"version":1,"records":[]}`), "format"},
		"newer version":        {bytes.Replace(good, []byte(`"version": 1,`), []byte(`"version": 2,`), 1), "version 2"},
		"digit changed":        {bytes.Replace(good, []byte(`10.32.8.0/21`), []byte(`10.32.9.0/21`), 1), "checksum"},
		"checksum removed":     {bytes.Replace(good, []byte(`"sha256": "`), []byte(`"sha256": "0`), 1), "checksum"},
		"oversized":            {append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxBackupSize)...), "MiB"},
		"colliding sites":      {edit(func(f *backupFile) { f.Table = bytes.Replace(f.Table, []byte(`"asn":64513`), []byte(`"asn":64512`), 1) }), "duplicate ASN"},
		"count differs":        {edit(func(f *backupFile) { f.Sites = 3 }), "says 3 sites"},
		"no voters":            {edit(func(f *backupFile) { f.Voters, f.Site = nil, "" }), "no voters"},
		"voter twice":          {edit(func(f *backupFile) { f.Voters = []string{"a", "a"} }), "listed twice"},
		"bad voter name":       {edit(func(f *backupFile) { f.Voters = []string{"a", "B"} }), "voters[1]"},
		"taken on a non-voter": {edit(func(f *backupFile) { f.Site = "z" }), "not one of its voters"},
		"index zero":           {edit(func(f *backupFile) { f.Raft.Index = 0 }), "index 0"},
		"configuration later":  {edit(func(f *backupFile) { f.Raft.ConfigurationIndex = 9 }), "configuration index 9"},
		"no owner": {edit(func(f *backupFile) {
			f.Table = bytes.Replace(f.Table, []byte(`"owner":"`+ownerA+`"`), []byte(`"owner":""`), 1)
		}), "no owner"},
	}
	for name, c := range cases {
		_, err := DecodeBackup(c.data)
		if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadBackup saying %q", name, err, c.want)
		}
	}
}

func TestReadBackupFileNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "b.json")
	os.WriteFile(p, []byte("{"), 0o600)
	if _, err := ReadBackupFile(p); !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), p) {
		t.Fatalf("damaged file: %v", err)
	}
	// Larger than the limit: refused after reading just past it.
	big, _ := os.Create(filepath.Join(dir, "big.json"))
	big.Truncate(MaxBackupSize + 10)
	big.Close()
	if _, err := ReadBackupFile(big.Name()); !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("oversized file: %v", err)
	}
	good, _ := testBackup(t).Encode()
	os.WriteFile(p, good, 0o600)
	if b, err := ReadBackupFile(p); err != nil || len(b.Table) != 2 {
		t.Fatalf("good file: %+v, %v", b, err)
	}
}

func FuzzDecodeBackup(f *testing.F) {
	good, err := testBackup(f).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"tfsite-allocation-backup","version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBackup(data)
		if err != nil {
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("error does not wrap ErrBadBackup: %v", err)
			}
			return
		}
		if err := site.CheckDisjoint(b.Table); err != nil {
			t.Fatalf("decoded a colliding table: %v", err)
		}
		again, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		c, err := DecodeBackup(again)
		if err != nil || !reflect.DeepEqual(b.Table, c.Table) || b.Index != c.Index || b.Term != c.Term || !reflect.DeepEqual(b.Voters, c.Voters) {
			t.Fatalf("round trip: %+v vs %+v (%v)", b, c, err)
		}
	})
}
