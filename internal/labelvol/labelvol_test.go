package labelvol

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/readlimit"
	"github.com/tfsite/tfsite/internal/testrig"
)

func TestDeviceTakesTheFirstLabelPresent(t *testing.T) {
	dir := t.TempDir()
	if _, err := (Volume{Labels: []string{"config-2"}, ByLabelDir: dir}).Device(); !errors.Is(err, ErrNoVolume) {
		t.Fatalf("empty dir: %v, want ErrNoVolume", err)
	}
	for _, l := range []string{"CONFIG-2", "cidata"} {
		os.WriteFile(filepath.Join(dir, l), nil, 0o600)
	}
	if d, err := (Volume{Labels: []string{"config-2", "CONFIG-2", "cidata"}, ByLabelDir: dir}).Device(); err != nil || filepath.Base(d) != "CONFIG-2" {
		t.Fatalf("Device = %q, %v; want CONFIG-2", d, err)
	}
}

// TestReadFilesFromARealVolume: a volume on a loop device, found by label,
// mounted read-only, files read within their limit. It is ext4: the kernel
// these tests were written on has no vfat or iso9660 (/proc/filesystems),
// so the mount code runs with a type every kernel has.
func TestReadFilesFromARealVolume(t *testing.T) {
	testrig.RequireRoot(t)
	for _, c := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s missing (e2fsprogs, mount; hack/deps.sh installs them): %v", c, err)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "vol.img")
	run := func(argv ...string) string {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	content := filepath.Join(dir, "content")
	os.MkdirAll(filepath.Join(content, "openstack", "latest"), 0o755)
	os.WriteFile(filepath.Join(content, "openstack", "latest", "user_data"), []byte("tfsite: {site: a}\n"), 0o644)
	os.WriteFile(filepath.Join(content, "big"), make([]byte, 5000), 0o644)
	run("mkfs.ext4", "-q", "-L", "config-2", "-d", content, img, "4M")
	loop := run("losetup", "-f", "--show", "-r", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	byLabel := filepath.Join(dir, "by-label")
	os.Mkdir(byLabel, 0o755)
	os.Symlink(loop, filepath.Join(byLabel, "config-2"))
	v := Volume{Labels: []string{"config-2"}, ByLabelDir: byLabel, FSTypes: []string{"vfat", "ext4"}}
	files, err := v.ReadFiles(4096, "openstack/latest/user_data", "openstack/latest/meta_data.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(files[0].Data) != "tfsite: {site: a}\n" || files[1].Data != nil || files[0].Device != filepath.Join(byLabel, "config-2") {
		t.Fatalf("read %q, %q from %s", files[0].Data, files[1].Data, files[0].Device)
	}
	if _, err := v.ReadFiles(4096, "big"); !errors.Is(err, readlimit.ErrTooLarge) || !strings.Contains(err.Error(), "big on ") {
		t.Fatalf("5000-byte file with a 4096 limit: %v", err)
	}
	if _, err := (Volume{Labels: []string{"config-2"}, ByLabelDir: byLabel, FSTypes: []string{"vfat"}}).ReadFiles(4096, "big"); err == nil || !strings.Contains(err.Error(), "read-only (vfat)") {
		t.Fatalf("mounting as the wrong type: %v", err)
	}
}
