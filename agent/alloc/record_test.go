package alloc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordAtomicRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadRecord(dir); ok || err != nil {
		t.Fatalf("empty dir: %v %v", ok, err)
	}
	if err := writeRecord(dir, localRecord{Owner: ownerA, Alloc: allocA}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadRecord(dir)
	if err != nil || !ok || got != allocA {
		t.Fatalf("%v %v %v", got, ok, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left behind: %v", ents)
	}
	os.WriteFile(filepath.Join(dir, recordFile), []byte("{garbage"), 0o600)
	if _, _, err := ReadRecord(dir); err == nil || !strings.Contains(err.Error(), recordFile) {
		t.Fatalf("corrupt record: %v", err)
	}
}

func TestOwnerStable(t *testing.T) {
	dir := t.TempDir()
	a, err := loadOrCreateOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadOrCreateOwner(dir)
	if err != nil || a != b {
		t.Fatalf("owner changed: %s %s %v", a, b, err)
	}
	os.WriteFile(filepath.Join(dir, ownerFile), []byte("short\n"), 0o600)
	if _, err := loadOrCreateOwner(dir); err == nil {
		t.Fatal("bad node id accepted")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	b, _ := json.Marshal(localRecord{Version: 1, Owner: ownerA, Alloc: allocA})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRecord(data)
		if err == nil && (r.Alloc.Validate() != nil || validOwner(r.Owner) != nil) {
			t.Fatal("accepted invalid record")
		}
	})
}
