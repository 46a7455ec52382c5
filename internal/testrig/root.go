// Package testrig is the shared test rig: root gating, network namespaces
// joined by veth, and real daemons (dnsmasq, ...) started inside them.
// Everything it creates is torn down through t.Cleanup, also when a test fails.
package testrig

import (
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where root tests must run.
func InCI() bool { return os.Getenv("CI") != "" && os.Getenv("CI") != "false" }

// RequireRoot skips a test that needs root when not root, unless in CI where
// it fails instead: CI runs as root, so a skip there would hide a broken test.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatal("this test needs root (network namespaces, raw sockets) and CI runs as root: euid is not 0")
	}
	t.Skip("skipping: needs root for network namespaces and raw sockets; run `sudo make test` (CI runs these as root)")
}

// RequireCommand skips (or fails in CI) when a program the test drives is missing.
func RequireCommand(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := lookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("%s not found: .ci/run must install Debian package %s", name, debianPackage)
	}
	t.Skipf("skipping: %s not found (apt-get install %s)", name, debianPackage)
	return ""
}
