package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, content := range []string{"one", "two, longer"} {
		if err := Write(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only state.json (temp files left?)", len(ents))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "nope", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestRemoveAbsentIsFine(t *testing.T) {
	dir := t.TempDir()
	if err := Remove(filepath.Join(dir, "absent")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	decode := func(b []byte) (int, error) {
		if string(b) != "42" {
			return 0, errors.New("not the answer")
		}
		return 42, nil
	}
	if v, found, err := Read(filepath.Join(dir, "absent"), "answer file", "", decode); v != 0 || found || err != nil {
		t.Fatalf("absent file: %v, %v, %v; want 0, not found, no error", v, found, err)
	}
	good := filepath.Join(dir, "good")
	if err := Write(good, []byte("42"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, found, err := Read(good, "answer file", "", decode); v != 42 || !found || err != nil {
		t.Fatalf("good file: %v, %v, %v; want 42, found", v, found, err)
	}
	bad := filepath.Join(dir, "bad")
	if err := Write(bad, []byte("41"), 0o644); err != nil {
		t.Fatal(err)
	}
	for hint, want := range map[string]string{
		"":                   "answer file " + bad + ": not the answer",
		"delete it to go on": "answer file " + bad + ": not the answer (delete it to go on)",
	} {
		if v, found, err := Read(bad, "answer file", hint, decode); v != 0 || found || err == nil || err.Error() != want {
			t.Errorf("bad file, hint %q: %v, %v, %v; want error %q", hint, v, found, err, want)
		}
	}
	// A directory cannot be read as a file: the error says what was read.
	if _, found, err := Read(dir, "answer file", "", decode); found || err == nil || !strings.HasPrefix(err.Error(), "reading answer file: ") {
		t.Errorf("unreadable file: found %v, error %v; want \"reading answer file: ...\"", found, err)
	}
}
