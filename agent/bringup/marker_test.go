package bringup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMarkerRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), MarkerFile)
	m := Marker{Node: "alpha-1", Reason: "not healthy within 4s: icmp:10.9.0.2", Change: "x-1", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := writeMarker(path, m); err != nil {
		t.Fatal(err)
	}
	got, ok, err := readMarker(path)
	m.Version = markerVersion
	if err != nil || !ok || got != m {
		t.Fatalf("read back %+v %v %v, want %+v", got, ok, err, m)
	}
	if _, ok, err := readMarker(filepath.Join(t.TempDir(), "none")); ok || err != nil {
		t.Fatalf("missing marker: %v %v", ok, err)
	}
}

func TestDecodeMarkerRejectsBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         ``,
		"not json":      `reverted`,
		"unknown field": `{"version":1,"node":"n","reason":"r","at":"2026-01-02T03:04:05Z","extra":1}`,
		"version":       `{"version":2,"node":"n","reason":"r","at":"2026-01-02T03:04:05Z"}`,
		"no reason":     `{"version":1,"node":"n","reason":" ","at":"2026-01-02T03:04:05Z"}`,
		"no time":       `{"version":1,"node":"n","reason":"r"}`,
		"trailing":      `{"version":1,"node":"n","reason":"r","at":"2026-01-02T03:04:05Z"} {}`,
		"stray brace":   `{"version":1,"node":"n","reason":"r","at":"2026-01-02T03:04:05Z"}}`,
	} {
		if _, err := DecodeMarker([]byte(in)); !errors.Is(err, ErrMarkerCorrupt) {
			t.Errorf("%s: err = %v, want ErrMarkerCorrupt", name, err)
		}
	}
	// A corrupt marker still counts as present: vrouter stays off.
	path := filepath.Join(t.TempDir(), MarkerFile)
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := readMarker(path); !ok || err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt marker: ok=%v err=%v", ok, err)
	}
}

func FuzzDecodeMarker(f *testing.F) {
	f.Add([]byte(`{"version":1,"node":"n","reason":"r","change":"c","at":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMarker(data)
		if err != nil {
			return
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeMarker(b)
		if err != nil || !again.At.Equal(m.At) || again.Reason != m.Reason || again.Node != m.Node || again.Change != m.Change {
			t.Fatalf("re-decode: %+v %v, want %+v", again, err, m)
		}
	})
}
