package config

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/passhash"
)

// TestConsolePasswordHashFromEachSource: console.passwordHash reaches the
// configuration from the file, the NoCloud seed and the kernel command line
// (as a tfsite.config= data URL: a bare hash's '$' would be expanded by some
// boot loaders).
func TestConsolePasswordHashFromEachSource(t *testing.T) {
	h, err := passhash.New("console-password", passhash.Recommended)
	if err != nil {
		t.Fatal(err)
	}
	doc := "console:\n  passwordHash: '" + h + "'\n"
	dataURL := "data:;base64," + base64.StdEncoding.EncodeToString([]byte(doc))
	for name, setup := range map[string]func(dir, seed string) Sources{
		"file": func(dir, _ string) Sources { return Sources{File: write(t, dir, "config.yaml", doc)} },
		"nocloud": func(_, seed string) Sources {
			write(t, seed, "user-data", "#cloud-config\ntfsite:\n  console:\n    passwordHash: '"+h+"'\n")
			return Sources{NoCloud: NoCloudDir(seed)}
		},
		"cmdline": func(dir, _ string) Sources {
			return Sources{Cmdline: write(t, dir, "cmdline", "console=ttyS0 tfsite.config="+dataURL+" quiet")}
		},
	} {
		dir, seed := seedDirs(t)
		l, err := Load(context.Background(), setup(dir, seed))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if l.Config.Console.PasswordHash != h {
			t.Errorf("%s: console.passwordHash = %q, want %q", name, l.Config.Console.PasswordHash, h)
		}
		c := l.Config
		c.Site, c.Voters, c.Insecure = "site-a", []string{"site-a"}, true // no gossip key here
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestConsolePasswordHashValidate(t *testing.T) {
	enc := base64.RawStdEncoding
	salt, key := enc.EncodeToString(make([]byte, 16)), enc.EncodeToString(make([]byte, 32))
	for name, bad := range map[string]string{
		"plain password": "hunter2hunter2",
		"weak":           "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$" + key,
		"legacy":         "pbkdf2-sha256$200000$" + salt + "$" + key,
	} {
		c := validConfig(t)
		c.Console.PasswordHash = bad
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "console.passwordHash: ") || !strings.Contains(err.Error(), "tfsite console hash") ||
			strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: Validate() = %v, want one line naming the field and the fix", name, err)
		}
	}
}
