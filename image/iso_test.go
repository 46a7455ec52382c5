package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// isoPaths are the four ways an operator boots the hybrid ISO: legacy BIOS (SeaBIOS) or UEFI (OVMF),
// from a CD-ROM drive or from a disk the ISO was written to (a USB stick made with dd).
var isoPaths = []struct {
	name, firmware, media string
}{
	{"bios-cd", "bios", "cd"},
	{"bios-disk", "bios", "disk"},
	{"uefi-cd", "uefi", "cd"},
	{"uefi-disk", "uefi", "disk"},
}

// reGrub is GRUB's menu entry on the serial line: the firmware ran GRUB from the ISO (the same
// configuration on both firmwares), not some other boot path.
var reGrub = regexp.MustCompile(`tfsite appliance \(live, runs from RAM\)`)

// TestBootISO boots mkosi.output/tfsite.iso (hack/image-iso.sh) under qemu (TCG) in each of the four
// paths, with the one-site lab's NoCloud seed, and asserts for each on the serial console: GRUB's
// menu, then the agent ready (systemd's "Started" for the Type=notify unit comes after READY=1).
//
// Run with `make test-image` (IMAGE_FORMATS must include iso), or TFSITE_IMAGE_TEST=1 go test
// -run TestBootISO ./image/ after `make image`.
func TestBootISO(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(root, "mkosi.output", "tfsite.iso")
	if os.Getenv("TFSITE_IMAGE_TEST") != "1" {
		t.Skip("ISO boot test: set TFSITE_IMAGE_TEST=1 after make image, or run make test-image (needs mkosi 24.3, GRUB and qemu: hack/image-deps.sh)")
	}
	if _, err := os.Stat(iso); err != nil {
		t.Fatalf("TFSITE_IMAGE_TEST=1 but %s is missing: run IMAGE_FORMATS=\"raw iso\" make image", iso)
	}
	for _, c := range []string{"qemu-system-x86_64", "mkfs.fat", "mcopy"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: run hack/image-deps.sh", c)
		}
	}
	seed := labSeed(t, root, labKey(t))
	// The live system runs from RAM: its initrd is the whole OS.
	mem := envOr("TFSITE_ISO_MEM", "2048")
	timeout := envDuration(t, "TFSITE_BOOT_TIMEOUT", 10*time.Minute)
	var summary []string
	for _, p := range isoPaths {
		t.Run(p.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			cmd := exec.Command(filepath.Join(root, "hack", "boot.sh"), iso)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "QEMU_ACCEL=tcg", "QEMU_MEM="+mem,
				"QEMU_FIRMWARE="+p.firmware, "ISO_MEDIA="+p.media, "TFSITE_SEED="+seed,
				fmt.Sprintf("SSH_PORT=%d", freePort(t)))
			v := startVM(t, ctx, cmd, filepath.Join(root, "mkosi.output", "boot-iso-"+p.name+".log"))
			if _, _, err := v.con.wait(v.ctx, reGrub, 0); err != nil {
				v.fail("%s: GRUB's menu never showed on the serial line: %v", p.name, err)
			}
			grubAt := v.con.since()
			either := regexp.MustCompile(reAgentReady.String() + "|" + reAgentFailed.String())
			m, _, err := v.con.wait(v.ctx, either, 0)
			if err != nil {
				v.fail("%s: agent never reported ready: %v", p.name, err)
			}
			if !reAgentReady.MatchString(m[0]) {
				v.fail("%s: agent failed: %q", p.name, m[0])
			}
			readyAt := v.con.since()
			t.Logf("ISO %s: GRUB at %s, agent ready at %s", p.name, grubAt, readyAt)
			summary = append(summary, fmt.Sprintf("%s=%s", p.name, readyAt))
		})
	}
	t.Logf("BOOT-ISO %s", strings.Join(summary, " "))
}
