package update

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rootDef = `[Transfer]
ProtectVersion=%A
Verify=yes

[Source]
Type=regular-file
Path=/var/lib/tfsite/update
MatchPattern=tfsite_@v.root.raw.gz

[Target]
Type=partition
Path=auto
`

func TestPrepareSetsTheSource(t *testing.T) {
	defs := t.TempDir()
	os.WriteFile(filepath.Join(defs, "10-root.conf"), []byte(strings.Replace(rootDef, "Verify=yes", "Verify=no", 1)), 0o644)
	run := filepath.Join(t.TempDir(), "run")
	dir, err := prepare(defs, run, "http://127.0.0.1:4711/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "10-root.conf"))
	// Verify=yes even where a definition says no: sysupdate checks what it writes.
	if !strings.Contains(string(b), "Verify=yes\n") || !strings.Contains(string(b), "[Source]\nType=url-file\nPath=http://127.0.0.1:4711/\n") || !strings.Contains(string(b), "[Target]\nType=partition\nPath=auto") {
		t.Fatalf("rewritten:\n%s", b)
	}
	os.WriteFile(filepath.Join(defs, "20-bad.conf"), []byte("[Source]\nMatchPattern=x\n"), 0o644)
	if _, err := prepare(defs, run, "http://127.0.0.1:4711/"); err == nil || !strings.Contains(err.Error(), "20-bad.conf") {
		t.Fatalf("definition without Path=: %v", err)
	}
	if _, err := prepare(t.TempDir(), run, "http://127.0.0.1:4711/"); err == nil || !strings.Contains(err.Error(), "no sysupdate definitions") {
		t.Fatalf("no definitions: %v", err)
	}
}

func TestConfigRefusesBadSources(t *testing.T) {
	for from, want := range map[string]string{
		"":                    "--from is empty",
		"/nonexistent/update": "not a directory",
		"ftp://host/x":        "only directories and http(s) URLs",
	} {
		cfg := Default()
		cfg.From = from
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--from %q: %v, want %q", from, err, want)
		}
	}
}

func TestParseSums(t *testing.T) {
	h := strings.Repeat("ab", 32)
	got, err := parseSums([]byte(h + "  tfsite_1.1.efi\n" + h + " *tfsite_1.1.root.raw.gz\n\n"))
	if err != nil || got["tfsite_1.1.efi"] != h || got["tfsite_1.1.root.raw.gz"] != h {
		t.Fatalf("%v, %v", got, err)
	}
	for _, bad := range []string{"zz  x\n", h + "\n", h + "  ../etc/passwd\n"} {
		if _, err := parseSums([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPartitionWritten(t *testing.T) {
	lines := []string{
		"Importing '/mnt/u/tfsite_1.1/tfsite_1.1.efi', saving as '/boot/EFI/Linux/.#sysupdatetfsite_1.1+3-0.efi01d7'.",
		"Successfully installed 'http://127.0.0.1:4711/tfsite_1.1.root.raw.gz' (url-file) as '/dev/vda3' (partition).",
		"Successfully installed 'http://127.0.0.1:4711/tfsite_1.1.efi' (url-file) as '/boot/EFI/Linux/tfsite_1.1+3-0.efi' (regular-file).",
	}
	if got := partitionWritten(lines); got != "/dev/vda3" {
		t.Fatalf("partitionWritten = %q, want /dev/vda3 (systemd-sysupdate 254's message)", got)
	}
}
