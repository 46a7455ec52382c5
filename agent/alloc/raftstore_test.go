package alloc

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestRaftStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v (raft needs the text \"not found\")", err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 5; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand, Data: []byte{byte(i)}, AppendedAt: time.Unix(0, int64(i))})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	s.SetUint64([]byte("CurrentTerm"), 7)
	if err := s.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	// A second opener of the same file fails instead of corrupting it.
	if _, err := openRaftStore(path); err == nil || errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), "another agent") {
		t.Fatalf("second open of a locked store: %v, want a refusal naming another agent", err)
	}
	s.Close()
	s, err = openRaftStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	term, _ := s.GetUint64([]byte("CurrentTerm"))
	if first != 3 || last != 5 || term != 7 {
		t.Fatalf("after reopen: first %d last %d term %d", first, last, term)
	}
	var l raft.Log
	if err := s.GetLog(4, &l); err != nil || l.Term != 2 || !bytes.Equal(l.Data, []byte{4}) || l.AppendedAt.UnixNano() != 4 {
		t.Fatalf("log 4: %+v %v", l, err)
	}
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted log: %v", err)
	}
}

func FuzzDecodeLog(f *testing.F) {
	f.Add(encodeLog(&raft.Log{Index: 1, Term: 1, Data: []byte("x"), Extensions: []byte("e"), AppendedAt: time.Unix(5, 0)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeLog(b)
		if err != nil {
			return
		}
		m, err := decodeLog(encodeLog(&l))
		if err != nil || m.Index != l.Index || m.Term != l.Term || m.Type != l.Type || !bytes.Equal(m.Data, l.Data) || !bytes.Equal(m.Extensions, l.Extensions) || !m.AppendedAt.Equal(l.AppendedAt) {
			t.Fatalf("round trip: %+v vs %+v (%v)", l, m, err)
		}
	})
}
