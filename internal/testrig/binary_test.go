package testrig

import (
	"os/exec"
	"strings"
	"testing"
)

func TestTfsiteBinaryRuns(t *testing.T) {
	defer RemoveBinaries()
	bin := TfsiteBinary(t)
	if again := TfsiteBinary(t); again != bin {
		t.Fatalf("second call built again: %s != %s", again, bin)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "tfsite ") {
		t.Fatalf("%s version = %q, %v", bin, out, err)
	}
}
