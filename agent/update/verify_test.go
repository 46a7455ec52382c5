package update

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// signer makes a throwaway GnuPG key and signs with it, as
// hack/image-build.sh signs updates.
type signer struct {
	t    *testing.T
	home string
}

func newSigner(t *testing.T, name string) *signer {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatalf("gpg missing (hack/deps.sh installs it): %v", err)
	}
	s := &signer{t: t, home: filepath.Join(t.TempDir(), "gnupg")}
	os.Mkdir(s.home, 0o700)
	s.gpg("--passphrase", "", "--quick-gen-key", name, "ed25519", "sign", "never")
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", s.home, "--kill", "all").Run() })
	return s
}

func (s *signer) gpg(args ...string) []byte {
	s.t.Helper()
	cmd := exec.Command("gpg", append([]string{"--batch", "--quiet", "--homedir", s.home}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("gpg %v: %v", args, err)
	}
	return out
}

// update writes an update dir signed by s.
func (s *signer) update(files map[string]string) string {
	dir := s.t.TempDir()
	var names []string
	for n, c := range files {
		os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
		names = append(names, n)
	}
	cmd := exec.Command("sha256sum", names...)
	cmd.Dir = dir
	sums, err := cmd.Output()
	if err != nil {
		s.t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), sums, 0o644)
	s.gpg("--detach-sign", "--output", filepath.Join(dir, "SHA256SUMS.gpg"), filepath.Join(dir, "SHA256SUMS"))
	return dir
}

func (s *signer) keyring() string {
	p := filepath.Join(s.t.TempDir(), "import-pubring.gpg")
	os.WriteFile(p, s.gpg("--export"), 0o644)
	return p
}

func TestVerifyTrustsOnlyTheBakedInKey(t *testing.T) {
	good := newSigner(t, "tfsite updates (test)")
	files := map[string]string{"tfsite_1.1.efi": "uki", "tfsite_1.1.root.raw.gz": "root"}
	dir := good.update(files)
	ctx := context.Background()
	if err := Verify(ctx, dir, good.keyring()); err != nil {
		t.Fatalf("good update: %v", err)
	}
	other := newSigner(t, "someone else")
	if err := Verify(ctx, dir, other.keyring()); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("signed by a key not in the keyring: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "tfsite_1.1.efi"), []byte("tampered"), 0o644)
	if err := Verify(ctx, dir, good.keyring()); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "tfsite_1.1.efi has SHA-256") {
		t.Fatalf("tampered file: %v", err)
	}
	dir = good.update(files)
	os.WriteFile(filepath.Join(dir, "tfsite_1.2.efi"), []byte("smuggled"), 0o644)
	if err := Verify(ctx, dir, good.keyring()); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "not listed") {
		t.Fatalf("unlisted file: %v", err)
	}
	dir = good.update(files)
	os.Remove(filepath.Join(dir, "SHA256SUMS.gpg"))
	if err := Verify(ctx, dir, good.keyring()); !errors.Is(err, ErrUnverified) {
		t.Fatalf("no signature: %v", err)
	}
}
