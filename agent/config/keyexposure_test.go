package config

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// A key file that group or others may open is refused outside lab mode,
// naming the file, its mode and the chmod that fixes it.
func TestKeyFileOpenToOthersRefusedOutsideLabMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := validConfig(t)
	c.Gossip.KeyFile, c.Gossip.Key = p, ""
	for mode, bad := range map[os.FileMode]bool{0o600: false, 0o400: false, 0o640: true, 0o604: true, 0o644: true, 0o660: true} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if bad != (err != nil) {
			t.Errorf("mode %04o: Validate() = %v, want refused %v", mode, err, bad)
			continue
		}
		if bad && (!strings.Contains(err.Error(), fmt.Sprintf("gossip.keyFile: %s is open to group or others (mode %04o)", p, mode)) ||
			!strings.Contains(err.Error(), "chmod 600 "+p) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("mode %04o: Validate() = %v, want one line naming the file, the mode and chmod 600", mode, err)
		}
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Insecure = true
	if err := c.Validate(); err != nil {
		t.Fatalf("lab mode: Validate() = %v, want only a warning", err)
	}
	if w := c.KeyExposure(); len(w) != 1 || !strings.Contains(w[0], "chmod 600") {
		t.Fatalf("lab mode: KeyExposure() = %q, want the one warning", w)
	}
}

// The docs' example key is refused outside lab mode, also as the second key
// of a ring.
func TestExampleKeyRefusedOutsideLabMode(t *testing.T) {
	c := validConfig(t)
	c.Gossip.Key = base64.StdEncoding.EncodeToString(make([]byte, 32)) + "," + ExampleKeys[0]
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "gossip.key: key 2 is the example key of docs/config.md") || !strings.Contains(err.Error(), "head -c32 /dev/urandom | base64") {
		t.Fatalf("Validate() = %v, want a refusal naming key 2 and how to generate one", err)
	}
	c.Insecure = true
	if err := c.Validate(); err != nil {
		t.Fatalf("lab mode: Validate() = %v", err)
	}
	p, err := ParseCmdline("tfsite.insecure=on")
	if err != nil {
		t.Fatal(err)
	}
	c.Insecure = false
	if err := p.Apply(&c); err != nil || !c.Insecure {
		t.Fatalf("tfsite.insecure=on: Insecure %v, %v", c.Insecure, err)
	}
}

// Every key printed in the docs is one ExampleKeys knows, so copying an
// example never gives a production site a key everyone holds.
func TestDocsKeysAreExampleKeys(t *testing.T) {
	re := regexp.MustCompile(`(?:tfsite\.key=|key: )([A-Za-z0-9+/]{20,}={0,2})`)
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			found++
			if !slices.Contains(ExampleKeys, m[1]) {
				t.Errorf("%s shows gossip key %s, which ExampleKeys does not list", f, m[1])
			}
		}
	}
	if found == 0 {
		t.Fatal("no key found in the docs: the pattern is stale")
	}
}
