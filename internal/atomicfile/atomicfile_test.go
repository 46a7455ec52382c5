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

func TestWriteSetReplacesAll(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	for _, gen := range []string{"old", "new"} {
		if err := WriteSet(File{a, []byte(gen + " a"), 0o600}, File{b, []byte(gen + " b"), 0o640}); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]string{a: "new a", b: "new b"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	if fi, _ := os.Stat(b); fi.Mode().Perm() != 0o640 {
		t.Errorf("b.yaml mode %v, want 0640", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("directory holds %d entries, want the 2 files (temp files left?)", len(ents))
	}
}

// A set whose second file cannot be written leaves the first file's old
// content: the temp files come first, the renames after.
func TestWriteSetFailureLeavesOldFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	if err := Write(a, []byte("old a"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteSet(File{a, []byte("new a"), 0o600}, File{filepath.Join(dir, "missing", "b.yaml"), []byte("new b"), 0o600})
	if err == nil || !strings.Contains(err.Error(), "creating temp file for "+filepath.Join(dir, "missing", "b.yaml")) {
		t.Fatalf("err = %v, want one naming b.yaml's temp file", err)
	}
	if got, _ := os.ReadFile(a); string(got) != "old a" {
		t.Errorf("a.yaml = %q after the failed set, want the old content", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only a.yaml (a temp file left?)", len(ents))
	}
}

func TestWriteSetRefusesAPathTwice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a")
	if err := WriteSet(File{p, nil, 0o600}, File{p + "/.", nil, 0o600}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("err = %v, want a refusal naming the path written twice", err)
	}
}

// A state file over MaxStateFile is refused naming the file and the limit,
// without reading more than the limit.
func TestReadRefusesAnOversizedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal.json")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, MaxStateFile+1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	decode := func(b []byte) (int, error) { return len(b), nil }
	_, found, err := Read(p, "journal", "move it aside", decode)
	want := "journal " + p + " is larger than 16 MiB, the limit (move it aside)"
	if found || err == nil || err.Error() != want {
		t.Fatalf("found %v, err %v; want %q", found, err, want)
	}
	if err := os.Truncate(p, MaxStateFile); err != nil {
		t.Fatal(err)
	}
	if n, found, err := Read(p, "journal", "", decode); n != MaxStateFile || !found || err != nil {
		t.Fatalf("file at the limit: %d bytes, %v, %v; want all of it", n, found, err)
	}
}
