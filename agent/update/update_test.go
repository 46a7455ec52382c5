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
	defs, from := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(defs, "10-root.conf"), []byte(rootDef), 0o644)
	cfg := Default()
	cfg.Definitions, cfg.RunDir, cfg.From = defs, filepath.Join(t.TempDir(), "run"), from
	dir, err := Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "10-root.conf"))
	if !strings.Contains(string(b), "Verify=no\n") || !strings.Contains(string(b), "[Source]\nType=regular-file\nPath="+from+"\n") || !strings.Contains(string(b), "[Target]\nType=partition\nPath=auto") {
		t.Fatalf("rewritten:\n%s", b)
	}
	cfg.From = "https://updates.example.com/tfsite/"
	if dir, err = Prepare(cfg); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "10-root.conf"))
	if !strings.Contains(string(b), "Verify=yes\n") || !strings.Contains(string(b), "Type=url-file\nPath=https://updates.example.com/tfsite/") {
		t.Fatalf("URL source:\n%s", b)
	}
	os.WriteFile(filepath.Join(defs, "20-bad.conf"), []byte("[Source]\nMatchPattern=x\n"), 0o644)
	if _, err := Prepare(cfg); err == nil || !strings.Contains(err.Error(), "20-bad.conf") {
		t.Fatalf("definition without Path=: %v", err)
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
		"Successfully installed '/mnt/u/tfsite_1.1/tfsite_1.1.root.raw.gz' (regular-file) as '/dev/vda3' (partition).",
		"Successfully installed '/mnt/u/tfsite_1.1/tfsite_1.1.efi' (regular-file) as '/boot/EFI/Linux/tfsite_1.1+3-0.efi' (regular-file).",
	}
	if got := partitionWritten(lines); got != "/dev/vda3" {
		t.Fatalf("partitionWritten = %q, want /dev/vda3 (systemd-sysupdate 254's message)", got)
	}
}
