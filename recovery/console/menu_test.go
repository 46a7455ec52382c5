package console

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// reEntry matches one menu entry as drawn: "NN) Label" and its mark.
var reEntry = regexp.MustCompile(`(\d+)\) ([A-Za-z][^*+]*?)( [*+])?$`)

// menuEntries reads the entries off text laid out in columns of 40.
func menuEntries(text string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n") {
		for _, col := range []string{line[:min(40, len(line))], line[min(40, len(line)):]} {
			if m := reEntry.FindStringSubmatch(strings.TrimRight(col, " ")); m != nil {
				out = append(out, m[1]+") "+m[2]+m[3])
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestMenuHelpListsTheMenuAsDrawn: the help's list and the drawn menu are
// the same entries, numbers and marks; every number is unique and the menu
// fits an 80x24 terminal.
func TestMenuHelpListsTheMenuAsDrawn(t *testing.T) {
	var out bytes.Buffer
	c := &Console{out: &out, noPassword: true}
	c.drawMenu()
	drawn, help := menuEntries(out.String()), menuEntries(MenuHelp())
	if len(drawn) != len(menu) || !slices.Equal(drawn, help) {
		t.Fatalf("menu shows %q\nhelp lists %q", drawn, help)
	}
	seen := map[string]bool{}
	for _, e := range menu {
		if seen[e.key] {
			t.Errorf("number %s used twice", e.key)
		}
		seen[e.key] = true
	}
	lines := strings.Split(strings.ReplaceAll(out.String(), "\r", ""), "\n")
	if len(lines) > 24 {
		t.Errorf("menu is %d lines:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		if len(l) >= 80 {
			t.Errorf("line of %d columns: %q", len(l), l)
		}
	}
	for _, l := range legend {
		if !strings.Contains(out.String(), l) || !strings.Contains(MenuHelp(), l) {
			t.Errorf("legend %q missing from the menu or the help", l)
		}
	}
}

// TestDocsShowTheMenu: docs/recovery.md's picture of the menu has the
// entries, numbers and marks the console draws.
func TestDocsShowTheMenu(t *testing.T) {
	doc, err := os.ReadFile("../../docs/recovery.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Entries (pfSense-like):\n\n```\n")
	pic, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/recovery.md has no menu picture after \"Entries (pfSense-like):\"")
	}
	var out bytes.Buffer
	(&Console{out: &out}).drawMenu()
	if drawn, shown := menuEntries(out.String()), menuEntries(pic); !slices.Equal(drawn, shown) {
		t.Fatalf("the console draws %q\ndocs/recovery.md shows %q", drawn, shown)
	}
}
