package netguard

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const linkUpOps = "operations: [{op: link-up, link: eth0}]\n"

func TestPlanDescriptionLimit(t *testing.T) {
	if _, err := DecodePlan([]byte("description: " + strings.Repeat("d", MaxDescription) + "\n" + linkUpOps)); err != nil {
		t.Fatalf("description at the limit: %v", err)
	}
	for name, tc := range map[string]struct{ plan, want string }{
		"long":    {"description: " + strings.Repeat("d", MaxDescription+1) + "\n" + linkUpOps, "description is 257 bytes: at most 256 (it is kept in the journal)"},
		"newline": {`description: "two\nlines"` + "\n" + linkUpOps, "description holds a control character"},
		// Every problem at once: the description and a bad operation.
		"both": {"description: " + strings.Repeat("d", 300) + "\noperations: [{op: flush}]\n", `description is 300 bytes: at most 256 (it is kept in the journal); operation 1: unknown op "flush"`},
	} {
		_, err := DecodePlan([]byte(tc.plan))
		if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line with %q", name, err, tc.want)
		}
	}
}

// A plan file over MaxPlanFile (here a description of 2 MiB; one of 50 MB
// cost 509 MB of RSS and a 50 MB journal) is refused naming the file and
// the limit; DecodePlan refuses such data as well.
func TestPlanFileLimit(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yaml")
	data := []byte("description: " + strings.Repeat("x", 2<<20) + "\n" + linkUpOps)
	if err := os.WriteFile(huge, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadPlanFile(huge)
	if want := "invalid network plan: plan file " + huge + " is larger than 1 MiB, the limit (docs/network-plan.md)"; !errors.Is(err, ErrInvalidPlan) || err.Error() != want {
		t.Fatalf("ReadPlanFile(huge) = %v, want %q", err, want)
	}
	if _, err := DecodePlan(data); !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), "larger than 1 MiB, the limit") {
		t.Fatalf("DecodePlan(huge) = %v", err)
	}
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, []byte(takeoverPlan), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := ReadPlanFile(ok); err != nil || len(p.Operations) != 5 {
		t.Fatalf("ReadPlanFile(ok) = %v, %v", p, err)
	}
}

// Reasons and descriptions are cut in the journal, those of events written
// before the limits too, so it stays small whatever went wrong.
func TestJournalCutsLongFields(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	old := journalDoc{Version: formatV1, Events: []Event{{Time: time.Now().UTC(), ID: "old", Event: EventApplied, Description: strings.Repeat("o", 1<<20)}}}
	b, _ := json.Marshal(old)
	if err := os.WriteFile(filepath.Join(st.Dir, journalFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	reason := "restore failed: " + strings.Repeat("address 10.0.0.1/24 on eth0: operation not permitted; ", 1000)
	if err := st.Record(Event{ID: "new", Event: EventRevertFailed, Reason: reason, Description: "ok"}); err != nil {
		t.Fatal(err)
	}
	ev, err := st.Events()
	if err != nil || len(ev) != 2 {
		t.Fatalf("events %v, %v", ev, err)
	}
	if d := ev[0].Description; len(d) > MaxDescription || !strings.HasSuffix(d, "bytes cut]") {
		t.Errorf("old description kept %d bytes (%.40q...), want at most %d, marked cut", len(d), d, MaxDescription)
	}
	if r := ev[1].Reason; len(r) > MaxReason || !strings.HasPrefix(r, "restore failed: address") || !strings.HasSuffix(r, "bytes cut]") {
		t.Errorf("reason kept %d bytes, want at most %d with its start, marked cut", len(r), MaxReason)
	}
	if fi, _ := os.Stat(filepath.Join(st.Dir, journalFile)); fi.Size() > 8<<10 {
		t.Errorf("journal is %d bytes after the cut, want a few KiB", fi.Size())
	}
}

// A pending record written before the description limit still decodes, so
// the change it guards can be reverted; a new record is written cut.
func TestPendingDescriptionCutButOldRecordsDecode(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	p := samplePending(t)
	p.Description = strings.Repeat("p", 10<<10)
	p.Plan.Description = p.Description
	b, _ := json.Marshal(p)
	if _, err := DecodePending(b); err != nil {
		t.Fatalf("record with a long description: %v", err)
	}
	if err := st.WritePending(p); err != nil {
		t.Fatal(err)
	}
	got, err := st.Pending()
	if err != nil || len(got.Description) > MaxDescription || len(got.Plan.Description) > MaxDescription {
		t.Fatalf("written record: %v; descriptions %d and %d bytes, want at most %d", err, len(got.Description), len(got.Plan.Description), MaxDescription)
	}
	if len(p.Description) != 10<<10 {
		t.Fatal("WritePending changed the caller's record")
	}
}

func TestClampTextKeepsRunes(t *testing.T) {
	s := strings.Repeat("é", 200) // 400 bytes
	got := clampText(s, 256)
	if len(got) > 256 || !utf8.ValidString(got) || !strings.HasSuffix(got, "bytes cut]") {
		t.Fatalf("clampText = %q (%d bytes)", got, len(got))
	}
	if clampText("short", 256) != "short" {
		t.Fatal("short text changed")
	}
}
