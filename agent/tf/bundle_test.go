package tf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	files, err := WriteBundle(dir, testParams())
	if err != nil || len(files) != 2 {
		t.Fatalf("%v %v", files, err)
	}
	k, _ := os.ReadFile(filepath.Join(dir, KubeadmFile))
	m, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	if !strings.Contains(string(k), "podSubnet: 10.40.0.0/16") || !strings.Contains(string(m), "VROUTER_GATEWAY: 192.168.50.1") {
		t.Fatalf("bundle content wrong:\n%s\n%s", k, m)
	}
	decodeStrict(t, m)
	p := testParams()
	p.Gateway = p.AdvertiseAddress
	if _, err := WriteBundle(filepath.Join(t.TempDir(), "bad"), p); err == nil {
		t.Fatal("invalid params written")
	}
}
