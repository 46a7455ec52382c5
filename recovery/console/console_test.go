package console

import (
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/oneline"
)

func TestWrap(t *testing.T) {
	s := "no recovery password is set: Set the console password stays closed until one is; set console.passwordHash"
	got := wrap(s, 40)
	for _, l := range strings.Split(got, "\r\n") {
		if len(l) > 40 || l == "" {
			t.Fatalf("line %q of %q", l, got)
		}
	}
	if oneline.Of(strings.ReplaceAll(got, "\r\n", " ")) != s {
		t.Fatalf("wrapping lost words: %q", got)
	}
	long := strings.Repeat("x", 50)
	if got := wrap("a "+long+" b", 40); got != "a\r\n"+long+"\r\nb" {
		t.Fatalf("a long word: %q", got)
	}
}
