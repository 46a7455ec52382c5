package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUpdateRollsBack is the A/B update cycle under qemu (docs/image.md,
// "Updates"): versions 1.0, 1.1 and 1.2 are built; 1.0 boots, installs 1.1
// from a second disk with `tfsite update` and reboots into it; 1.1 installs
// 1.2, whose agent never gets ready, so its health check fails and it
// reboots; after its three tries systemd-boot boots 1.1 again by itself.
// The allocation, a file in tfsite's state dir and an image in containerd
// (all on /var) survive every step.
func TestUpdateRollsBack(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TFSITE_IMAGE_TEST") != "1" {
		t.Skip("update test: set TFSITE_IMAGE_TEST=1 (as root, with mkosi 24.3 and qemu: make test-image)")
	}
	dir := t.TempDir()
	upd := filepath.Join(dir, "updates")
	if err := os.Mkdir(upd, 0o755); err != nil {
		t.Fatal(err)
	}

	// Three builds; each leaves its update files in mkosi.output/update/. The control-plane
	// images stay out: the cycle, not their size, is what is tested (they live on /var anyway).
	build := func(version, formats, extra string) {
		t.Helper()
		start := time.Now()
		cmd := exec.Command(filepath.Join(root, "hack", "image-build.sh"))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "TFSITE_IMAGE_VERSION="+version, "IMAGE_FORMATS="+formats,
			"TFSITE_KUBE_IMAGES_TAR=/nonexistent", "TFSITE_IMAGE_EXTRA="+extra)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", version, err, tailLines(string(out), 30))
		}
		t.Logf("built %s (%s) in %s", version, formats, time.Since(start).Round(time.Second))
	}
	// 1.2's agent reads a config file that does not exist: it exits at once and never gets ready.
	broken := filepath.Join(dir, "broken")
	writeFile(t, filepath.Join(broken, "etc", "tfsite", "agent.env"), "TFSITE_AGENT_FLAGS=--config /etc/tfsite/missing.yaml\n")
	writeFile(t, filepath.Join(broken, "etc", "tfsite", "health.env"), "TFSITE_HEALTH_TIMEOUT=20\n")
	for _, b := range []struct{ version, extra string }{{"1.1", ""}, {"1.2", broken}} {
		build(b.version, "raw update", b.extra)
		if out, err := exec.Command("cp", "-a", filepath.Join(root, "mkosi.output", "update", "tfsite_"+b.version), filepath.Join(upd, "tfsite_"+b.version)).CombinedOutput(); err != nil {
			t.Fatalf("keeping %s's update: %v: %s", b.version, err, out)
		}
	}
	build("1.0", "raw", "")
	raw := filepath.Join(root, "mkosi.output", "tfsite.raw")
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", raw, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	writeImageArchive(t, filepath.Join(upd, "marker-image.tar"))
	updDisk := filepath.Join(dir, "updates.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "tfsite-upd", "-d", upd, updDisk, "2G").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 of the update disk: %v: %s", err, out)
	}

	const password = "update-test-pw"
	hash := consoleHash(t, root, password)
	seed := seedWith(t, root, "#cloud-config\ntfsite:\n  site: lab-a\n  voters: [lab-a]\n  gossip: {key: "+labKey(t)+"}\n"+
		"  console: {passwordHash: '"+hash+"'}\n")
	ctx, cancel := context.WithTimeout(context.Background(), envDuration(t, "TFSITE_UPDATE_TIMEOUT", 30*time.Minute))
	defer cancel()
	boots := 0
	boot := func() *vm {
		boots++
		cmd := exec.Command(filepath.Join(root, "hack", "boot.sh"), disk)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "QEMU_ACCEL=tcg", "QEMU_MEM=2048", "TFSITE_SEED="+seed, "BOOT_PERSIST=1",
			fmt.Sprintf("SSH_PORT=%d", freePort(t)), "QEMU_EXTRA=-drive if=virtio,format=raw,readonly=on,file="+updDisk)
		return startVM(t, ctx, cmd, filepath.Join(root, "mkosi.output", fmt.Sprintf("update-test-boot%d.log", boots)))
	}
	ready := func(v *vm) {
		if _, _, err := v.con.wait(v.ctx, reAgentReady, 0); err != nil {
			v.fail("boot %d: the agent never reported ready: %v", boots, err)
		}
	}
	shell := func(v *vm, script string) string {
		out, err := v.guestShell(password, script)
		if err != nil {
			v.fail("boot %d: console shell: %v", boots, err)
		}
		return out
	}
	const state = `. /etc/os-release; echo "version=$IMAGE_VERSION"; echo "alloc=$(tfsite status --json | tr -d ' \n' | grep -o '"allocation":{[^}]*}')"; echo "marker=$(cat /var/lib/tfsite/update-test-marker 2>/dev/null)"; ` +
		`echo "images=$(ctr -n k8s.io images ls -q | grep -c tfsite.test/marker)"; echo "entries=$(ls /boot/EFI/Linux /efi/EFI/Linux 2>/dev/null | grep efi | tr '\n' ' ')"`
	field := func(out, key string) string {
		m := regexp.MustCompile(`(?m)^` + key + `=(.*?)\r?$`).FindStringSubmatch(out)
		if m == nil {
			return ""
		}
		return strings.TrimSpace(m[1])
	}
	rebootVia := func(v *vm) {
		shell(v, "(sleep 2; systemctl reboot) >/dev/null 2>&1 & true")
		<-v.ctx.Done() // -no-reboot: qemu exits when the guest reboots
	}

	// 1.0: note what must survive, then install 1.1.
	v := boot()
	ready(v)
	out := shell(v, `mkdir -p /mnt/u && mount -o ro LABEL=tfsite-upd /mnt/u && ctr -n k8s.io images import /mnt/u/marker-image.tar >/dev/null && `+
		`head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >/var/lib/tfsite/update-test-marker; `+state)
	marker, alloc := field(out, "marker"), field(out, "alloc")
	if field(out, "version") != "1.0" || marker == "" || field(out, "images") != "1" || !strings.Contains(alloc, `"asn":`) {
		v.fail("1.0 before the update: %q", out)
	}
	cycle := time.Now()
	out = shell(v, "tfsite update --from /mnt/u/tfsite_1.1 2>&1; echo exit=$?")
	if field(out, "exit") != "0" || !strings.Contains(out, "installed 1.1 into /dev/") {
		v.fail("tfsite update to 1.1: %s", out)
	}
	updateTook := time.Since(cycle)
	rebootVia(v)

	// 1.1: booted with tries, blessed once healthy; then install 1.2.
	v = boot()
	ready(v)
	var entries string
	for end := time.Now().Add(3 * time.Minute); ; time.Sleep(5 * time.Second) {
		out = shell(v, state)
		entries = field(out, "entries")
		if strings.Contains(entries, "tfsite_1.1.efi") || time.Now().After(end) {
			break
		}
	}
	if field(out, "version") != "1.1" || field(out, "alloc") != alloc || field(out, "marker") != marker || field(out, "images") != "1" || !strings.Contains(entries, "tfsite_1.1.efi") {
		v.fail("1.1 after the update (want version 1.1, the allocation %s, the marker, the image, a blessed tfsite_1.1.efi): %q", alloc, out)
	}
	t.Logf("UPDATE 1.0 -> 1.1: install %s, back up and blessed %s after starting it", updateTook.Round(time.Second), time.Since(cycle).Round(time.Second))
	out = shell(v, "mkdir -p /mnt/u && mount -o ro LABEL=tfsite-upd /mnt/u; tfsite update --from /mnt/u/tfsite_1.2 2>&1; echo exit=$?")
	if field(out, "exit") != "0" || !strings.Contains(out, "installed 1.2 into /dev/") {
		v.fail("tfsite update to 1.2: %s", out)
	}
	rollback := time.Now()
	rebootVia(v)

	// 1.2 fails its health check and reboots, three times; then 1.1 boots by itself.
	reBoot := regexp.MustCompile(`tfsite-health: version (\S+) NOT healthy|tfsite-agent: ready \(READY=1\)`)
	failed := 0
	for {
		if failed > 4 {
			t.Fatalf("1.2 booted %d times without systemd-boot returning to 1.1", failed)
		}
		v = boot()
		m, _, err := v.con.wait(v.ctx, reBoot, 0)
		if err != nil {
			v.fail("boot %d: neither a failed health check nor a ready agent: %v", boots, err)
		}
		if m[1] != "" {
			if m[1] != "1.2" {
				v.fail("boot %d: version %s not healthy, want only 1.2 failing", boots, m[1])
			}
			failed++
			<-v.ctx.Done() // the health check reboots a boot on trial
			continue
		}
		break
	}
	out = shell(v, state)
	if field(out, "version") != "1.1" || field(out, "alloc") != alloc || field(out, "marker") != marker || field(out, "images") != "1" || !strings.Contains(field(out, "entries"), "tfsite_1.2+0-3.efi") {
		v.fail("after 1.2 failed (want 1.1 running, the allocation %s, the marker and image kept, tfsite_1.2+0-3.efi left): %q", alloc, out)
	}
	t.Logf("ROLLBACK 1.2 failed %d boots, 1.1 back %s after the reboot into 1.2", failed, time.Since(rollback).Round(time.Second))
	t.Logf("UPDATE CYCLE install 1.1 .. back on 1.1 after 1.2's rollback: %s", time.Since(cycle).Round(time.Second))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func consoleHash(t *testing.T, root, password string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, ".cache", "image-stage", "usr", "bin", "tfsite"), "console", "hash")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tfsite console hash: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// writeImageArchive writes a one-file image as a docker archive (what
// `ctr images import` reads) tagged tfsite.test/marker:1.
func writeImageArchive(t *testing.T, path string) {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "marker", Mode: 0o644, Size: 6, Typeflag: tar.TypeReg})
	tw.Write([]byte("tfsite"))
	tw.Close()
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	diffID := "sha256:" + sum(layer.Bytes())
	config, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}}})
	manifest, _ := json.Marshal([]map[string]any{{"Config": sum(config) + ".json", "RepoTags": []string{"tfsite.test/marker:1"},
		"Layers": []string{sum(layer.Bytes()) + "/layer.tar"}}})
	var out bytes.Buffer
	aw := tar.NewWriter(&out)
	for _, f := range []struct {
		name string
		data []byte
	}{{sum(config) + ".json", config}, {sum(layer.Bytes()) + "/layer.tar", layer.Bytes()}, {"manifest.json", manifest}} {
		aw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		aw.Write(f.data)
	}
	aw.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
