package update

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// DefaultKeyring is the trust root of updates: the public keys baked into
// the image at build time (hack/image-build.sh, TFSITE_UPDATE_KEY). It is
// the keyring systemd-sysupdate checks URL updates against too.
const DefaultKeyring = "/etc/systemd/import-pubring.gpg"

// ErrUnverified wraps every reason an update is refused before anything
// is written: no or bad signature, a file missing from or differing from
// SHA256SUMS.
var ErrUnverified = errors.New("update not verified")

// maxSums bounds SHA256SUMS.
const maxSums = 64 << 10

// Verify checks an update directory before anything is written, for a clear
// refusal (sysupdate checks again over what it writes): SHA256SUMS.gpg must be a good signature
// of SHA256SUMS by a key in keyring (gpgv), and every update file in dir
// (tfsite_*.root.raw.gz, tfsite_*.efi) must be listed there with its hash.
func Verify(ctx context.Context, dir, keyring string) error {
	sums := filepath.Join(dir, "SHA256SUMS")
	for _, f := range []string{sums, sums + ".gpg", keyring} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w: %v", ErrUnverified, err)
		}
	}
	cmd := exec.CommandContext(ctx, "gpgv", "--keyring", keyring, sums+".gpg", sums)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: SHA256SUMS's signature does not verify with %s: %s", ErrUnverified, keyring, oneline.Of(lastLine(out, err)))
	}
	b, err := readlimit.File(sums, "SHA256SUMS", maxSums)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnverified, err)
	}
	want, err := parseSums(b)
	if err != nil {
		return fmt.Errorf("%w: SHA256SUMS: %w", ErrUnverified, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tfsite_*"))
	n := 0
	for _, f := range files {
		name := filepath.Base(f)
		if !strings.HasSuffix(name, ".root.raw.gz") && !strings.HasSuffix(name, ".efi") {
			continue
		}
		h, ok := want[name]
		if !ok {
			return fmt.Errorf("%w: %s is not listed in SHA256SUMS", ErrUnverified, name)
		}
		got, err := fileSHA256(f)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnverified, err)
		}
		if got != h {
			return fmt.Errorf("%w: %s has SHA-256 %s, SHA256SUMS says %s", ErrUnverified, name, got, h)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: no tfsite_<version>.root.raw.gz or .efi in %s", ErrUnverified, dir)
	}
	return nil
}

// parseSums reads sha256sum's format: "HASH  NAME" (or "HASH *NAME").
func parseSums(b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for i := 1; sc.Scan(); i++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		h, name, ok := strings.Cut(line, " ")
		name = strings.TrimLeft(strings.TrimSpace(name), "*")
		if _, err := hex.DecodeString(h); !ok || err != nil || len(h) != 64 || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("line %d is not \"SHA256  NAME\"", i)
		}
		out[name] = strings.ToLower(h)
	}
	return out, sc.Err()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func lastLine(out []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}
