package testrig

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// TfsiteBinary builds ./cmd/tfsite once per test process (go build, static)
// and returns its path, for tests that run the real binary as separate
// processes. Call RemoveBinaries from TestMain to delete it afterwards.
func TfsiteBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "tfsite-bin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "tfsite")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/tfsite/tfsite/cmd/tfsite")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/tfsite: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Main is a TestMain for packages whose tests use TfsiteBinary: it runs
// the tests, deletes the binaries and exits with the tests' code.
func Main(m *testing.M) {
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

// RemoveBinaries deletes what TfsiteBinary built; call it from TestMain
// after m.Run (Main does).
func RemoveBinaries() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}
