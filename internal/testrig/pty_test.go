package testrig

import (
	"os/exec"
	"strings"
	"testing"
)

func TestPTYDrivesAProgram(t *testing.T) {
	p := OpenPTY(t)
	cmd := exec.Command("sh", "-c", `printf 'name? '; read x; echo "got-$x"`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.TTY, p.TTY, p.TTY
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.Expect("name? ")
	p.Send("hi")
	if seg := p.Expect("got-hi"); !strings.HasPrefix(seg, "hi") || !strings.HasSuffix(seg, "got-hi") {
		t.Fatalf("Expect returned %q, want the echo through the match", seg)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// The terminal echoes what was typed, with the program's output.
	if tr := p.Transcript(); !strings.Contains(tr, "name? hi") {
		t.Fatalf("transcript %q", tr)
	}
}
