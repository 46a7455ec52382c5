package image

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestBringUpImage boots the appliance (tfsite.raw behind a 16 GiB overlay, so the root grows; 3 GiB,
// 2 vCPU, TCG) with a one-site lab seed that turns bring-up on with the lab profile, and asserts from
// the recovery console's Status (the agent's API) that the real path ran: the control-plane images
// imported into containerd, the real `kubeadm init` finished, the API server answers /readyz, the
// node registered with a pod CIDR inside the site's allocated pod prefix, the control-plane static
// pods Running, TF's manifest applied, and the guarded vrouter start ended as designed here (no
// vrouter can start: reverted, with the marker).
//
// Run with `make test-image`, or TFSITE_IMAGE_TEST=1 go test -run TestBringUpImage ./image/.
func TestBringUpImage(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(root, "mkosi.output", "tfsite.raw")
	if os.Getenv("TFSITE_IMAGE_TEST") != "1" {
		t.Skip("bring-up boot test: set TFSITE_IMAGE_TEST=1 after make image, or run make test-image (needs mkosi 24.3, qemu and the kube cache: hack/build-kube.sh)")
	}
	if _, err := os.Stat(raw); err != nil {
		t.Fatalf("TFSITE_IMAGE_TEST=1 but %s is missing: run make image", raw)
	}
	if _, err := os.Stat(filepath.Join(root, ".cache", "image-stage", "usr", "share", "tfsite", "kube-images.tar")); err != nil {
		t.Fatalf("the image has no control-plane images archive (%v): run hack/build-kube.sh, then make image", err)
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", disk, "16G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	seed := seedWith(t, root, "#cloud-config\ntfsite:\n  site: lab-a\n  voters: [lab-a]\n  gossip: {key: "+labKey(t)+"}\n"+
		"  bringUp: {enabled: true, profile: lab, vrouterStart: 30s, guardWindow: 10s, interval: 15s}\n")

	timeout := envDuration(t, "TFSITE_BRINGUP_TIMEOUT", 35*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.Command(filepath.Join(root, "hack", "boot.sh"), disk)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "QEMU_ACCEL=tcg", "QEMU_MEM=3072", "TFSITE_SEED="+seed,
		fmt.Sprintf("SSH_PORT=%d", freePort(t)), "BOOT_PERSIST=1")
	v := startVM(t, ctx, cmd, filepath.Join(root, "mkosi.output", "bringup-test.log"))

	if _, _, err := v.con.wait(v.ctx, reAgentReady, 0); err != nil {
		v.fail("agent never reported ready: %v", err)
	}
	t.Logf("agent ready at %s", v.con.since())

	// The site's pod prefix, from the allocation the console shows.
	var pod netip.Prefix
	rePods := regexp.MustCompile(`pods +(\d+\.\d+\.\d+\.\d+/\d+)`)
	if err := v.consoleStatusUntil(rePods, func(m []string) bool {
		p, err := netip.ParsePrefix(m[1])
		pod = p
		return err == nil
	}); err != nil {
		v.fail("no allocation on the console: %v", err)
	}
	reLab := regexp.MustCompile(`bring-up LAB PROFILE`)
	if err := v.consoleStatusUntil(reLab, nil); err != nil {
		v.fail("the lab profile is not shown on the console: %v", err)
	}

	steps := []struct {
		what string
		re   *regexp.Regexp
		ok   func(m []string) bool
	}{
		{"images imported", regexp.MustCompile(`ok images: (imported \d+|all \d+) control-plane images`), nil},
		{"kubeadm init", regexp.MustCompile(`ok kubeadm: kubeadm init done in (\S+)`), nil},
		{"TF applied", regexp.MustCompile(`ok apply: TF manifest applied`), nil},
		{"cluster", regexp.MustCompile(`ok cluster: readyz ok; node (\S+) podCIDR (\S+) NotReady[^;]*;\s+4/4\s+control-plane\s+pods\s+Running`),
			func(m []string) bool {
				c, err := netip.ParsePrefix(m[2])
				return err == nil && pod.Contains(c.Addr()) && c.Bits() >= pod.Bits()
			}},
		{"vrouter guard", regexp.MustCompile(`vrouter +REVERTED`), nil},
	}
	for _, s := range steps {
		if err := v.consoleStatusUntil(s.re, s.ok); err != nil {
			v.fail("bring-up: %s never showed on the console: %v", s.what, err)
		}
		t.Logf("bring-up: %s at %s", s.what, v.con.since())
	}
	t.Logf("BRINGUP pod=%s total=%s", pod, v.con.since())

	// A reboot (here a power-off: qemu stopped, then started again on the same disk) brings the control
	// plane back without a second init: the images are already in containerd, the cluster exists.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-v.ctx.Done()
	cmd = exec.Command(filepath.Join(root, "hack", "boot.sh"), disk)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "QEMU_ACCEL=tcg", "QEMU_MEM=3072", "TFSITE_SEED="+seed,
		fmt.Sprintf("SSH_PORT=%d", freePort(t)), "BOOT_PERSIST=1")
	v = startVM(t, ctx, cmd, filepath.Join(root, "mkosi.output", "bringup-test-reboot.log"))
	if _, _, err := v.con.wait(v.ctx, reAgentReady, 0); err != nil {
		v.fail("after the reboot the agent never reported ready: %v", err)
	}
	for _, s := range []struct {
		what string
		re   *regexp.Regexp
		ok   func(m []string) bool
	}{
		{"images kept", regexp.MustCompile(`ok images: all \d+ control-plane images present`), nil},
		{"no second init", regexp.MustCompile(`ok kubeadm: cluster exists`), nil},
		steps[3],
	} {
		if err := v.consoleStatusUntil(s.re, s.ok); err != nil {
			v.fail("after the reboot: %s never showed on the console: %v", s.what, err)
		}
		t.Logf("after the reboot: %s at %s", s.what, v.con.since())
	}
}

// seedWith makes a NoCloud seed holding userData.
func seedWith(t *testing.T, root, userData string) string {
	t.Helper()
	dir := t.TempDir()
	ud := filepath.Join(dir, "user-data")
	if err := os.WriteFile(ud, []byte(userData), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.img")
	if out, err := exec.Command(filepath.Join(root, "hack", "image-seed.sh"), seed, ud).CombinedOutput(); err != nil {
		t.Fatalf("hack/image-seed.sh: %v\n%s", err, out)
	}
	return seed
}
