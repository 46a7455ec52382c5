package api

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleBringUp() *BringUp {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return &BringUp{
		Phase: "ready", PeersConfigured: 2, Updated: at,
		Steps:   []BringUpStep{{Name: "params", OK: true, Detail: "site a", At: at}},
		Vrouter: &VrouterOutcome{Confirmed: true, Ended: at},
		Running: &BringUpRunning{Name: "kubeadm", Since: at},
	}
}

func TestDoingSaysWhatRunsAndForHowLong(t *testing.T) {
	b := sampleBringUp()
	if got := b.Doing(b.Running.Since.Add(130500 * time.Millisecond)); got != "kubeadm running for 2m11s" {
		t.Fatalf("Doing = %q", got)
	}
	b.Running = nil
	if got := b.Doing(time.Now()); got != "" {
		t.Fatalf("nothing running: Doing = %q", got)
	}
}

func TestBringUpReportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if b, err := ReadBringUp(dir); b != nil || err != nil {
		t.Fatalf("no report yet: got %+v, %v; want nil, nil", b, err)
	}
	want := sampleBringUp()
	if err := WriteBringUp(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBringUp(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(a, w) {
		t.Fatalf("round trip:\n got %s\nwant %s", a, w)
	}
}

func TestReadBringUpRejectsBadReports(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field": `{"phase":"ready","bogus":1}`,
		"no phase":      `{"peersConfigured":1}`,
		"not json":      `phase: ready`,
		"over 1 MiB":    `{"phase":"ready","detail":"` + strings.Repeat("d", maxBringUpFile) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, BringUpStatusFile)
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, []byte(body), 0o644)
			b, err := ReadBringUp(dir)
			if err == nil || b != nil {
				t.Fatalf("accepted %q: %+v", body, b)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "delete the file") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming the file and the fix", msg)
			}
		})
	}
}

func FuzzDecodeBringUp(f *testing.F) {
	b, _ := json.Marshal(sampleBringUp())
	f.Add(b)
	f.Add([]byte(`{"phase":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBringUp(bytes.NewReader(data))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		if b.Phase == "" {
			t.Fatal("accepted a report without a phase")
		}
	})
}
