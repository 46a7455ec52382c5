package console

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/passhash"
)

func testConsole(t *testing.T, configured HashSource) *Console {
	t.Helper()
	dir := t.TempDir()
	cfg := Default()
	cfg.PasswordFile, cfg.LockoutFile = filepath.Join(dir, "password"), filepath.Join(dir, "lockout.json")
	cfg.ConfiguredHash = configured
	c, err := New(cfg, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fixed(hash string, err error) HashSource {
	return func(context.Context) (string, string, error) { return hash, "file /etc/tfsite/config.yaml", err }
}

// TestCredentialPrecedence: the configuration's hash wins over the password
// file; without one the file counts; a hash that cannot be used is an error
// naming where it is and how to make a good one.
func TestCredentialPrecedence(t *testing.T) {
	cfgHash, _ := passhash.New("from-config", passhash.Recommended)
	fileHash, _ := passhash.New("from-file", passhash.Recommended)
	ctx := context.Background()

	c := testConsole(t, fixed("", nil))
	if _, err := c.credential(ctx); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("nothing configured, no file: %v, want ErrNoPassword", err)
	}
	if err := WritePasswordHash(c.cfg.PasswordFile, fileHash); err != nil {
		t.Fatal(err)
	}
	cr, err := c.credential(ctx)
	if err != nil || !cr.file || !cr.hash.Verify("from-file") {
		t.Fatalf("file only: %+v %v", cr, err)
	}
	if fi, _ := os.Stat(c.cfg.PasswordFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode %v, want 0600", fi.Mode().Perm())
	}

	c.cfg.ConfiguredHash = fixed(cfgHash, nil)
	cr, err = c.credential(ctx)
	if err != nil || cr.file || !cr.hash.Verify("from-config") || !strings.Contains(cr.where, "/etc/tfsite/config.yaml") {
		t.Fatalf("config and file: %+v %v", cr, err)
	}

	legacy := "pbkdf2-sha256$1000$c2l4dGVlbiBieXRlIHNsdA$" + strings.Repeat("A", 43)
	for name, src := range map[string]HashSource{
		"garbled":    fixed("$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", nil),
		"legacy":     fixed(legacy, nil),
		"unreadable": fixed("", errors.New("mounting seed /dev/sr0: input/output error")),
	} {
		c.cfg.ConfiguredHash = src
		cr, err := c.credential(ctx)
		if cr != nil || err == nil || errors.Is(err, ErrNoPassword) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %+v %v, want a one-line error", name, cr, err)
		}
		if name != "unreadable" && !strings.Contains(err.Error(), "tfsite console hash") {
			t.Errorf("%s: %v does not say how to make a hash", name, err)
		}
	}
}

func TestPasswordFileBadOrHuge(t *testing.T) {
	c := testConsole(t, nil)
	for _, content := range []string{"not a hash\n", strings.Repeat("x", 1<<20)} {
		if err := os.WriteFile(c.cfg.PasswordFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := c.credential(context.Background())
		if err == nil || errors.Is(err, ErrNoPassword) || !strings.Contains(err.Error(), c.cfg.PasswordFile) {
			t.Errorf("file of %d bytes: %v, want an error naming the file", len(content), err)
		}
	}
}
