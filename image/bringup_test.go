package image

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
	// The overlay grows by about 1 GiB (images unpacked, etcd); a full disk
	// pauses the VM silently, so say so up front.
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil && fs.Bavail*uint64(fs.Bsize) < 3<<30 {
		t.Fatalf("%s has %d MiB free; the VM's disk overlay needs about 3 GiB: free space or set TMPDIR", dir, fs.Bavail*uint64(fs.Bsize)>>20)
	}
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", disk, "16G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	// A recovery password, so the test can read the guest's memory from the console's shell.
	const password = "bring-up-test-pw"
	hashCmd := exec.Command(filepath.Join(root, ".cache", "image-stage", "usr", "bin", "tfsite"), "console", "hash")
	hashCmd.Stdin = strings.NewReader(password + "\n")
	hash, err := hashCmd.Output()
	if err != nil {
		t.Fatalf("tfsite console hash: %v", err)
	}
	seed := seedWith(t, root, "#cloud-config\ntfsite:\n  site: lab-a\n  voters: [lab-a]\n  gossip: {key: "+labKey(t)+"}\n"+
		"  bringUp: {enabled: true, profile: lab, vrouterStart: 30s, guardWindow: 10s, interval: 15s}\n"+
		"  console: {passwordHash: '"+strings.TrimSpace(string(hash))+"'}\n")

	timeout := envDuration(t, "TFSITE_BRINGUP_TIMEOUT", 35*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.Command(filepath.Join(root, "hack", "boot.sh"), disk)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "QEMU_ACCEL=tcg", "QEMU_MEM=3072", "TFSITE_SEED="+seed,
		fmt.Sprintf("SSH_PORT=%d", freePort(t)), "BOOT_PERSIST=1")
	// The steps give up 3 minutes before the VM's time is up, so a failure can still be looked
	// into from the console's shell (kubeadm's log, the kubelet's journal).
	steps, stepsCancel := context.WithTimeout(ctx, timeout-3*time.Minute)
	defer stepsCancel()
	v := startVM(t, ctx, cmd, filepath.Join(root, "mkosi.output", "bringup-test.log"))
	v.onStatus = logFailedSteps(t, v, password)

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

	want := []struct {
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
	for _, s := range want {
		if err := v.consoleStatusUntilCtx(steps, s.re, s.ok); err != nil {
			v.fail("bring-up: %s never showed on the console: %v\n%s", s.what, err, v.diagnose(password))
		}
		t.Logf("bring-up: %s at %s", s.what, v.con.since())
	}
	t.Logf("BRINGUP pod=%s total=%s", pod, v.con.since())
	// Memory once the bring-up has finished: the guest as a whole (MemTotal - MemAvailable), and the
	// anonymous memory (page cache excluded: the imported images sit there) of the control-plane
	// pods (kubepods.slice), the kubelet and containerd with its shims.
	cg := "/sys/fs/cgroup/"
	out, err := v.guestShell(password, "echo MEM $(awk '/^anon /{print $2}' "+cg+"kubepods.slice/memory.stat "+
		cg+"system.slice/kubelet.service/memory.stat "+cg+"system.slice/containerd.service/memory.stat) "+
		"$(awk '/^MemTotal|^MemAvailable/{print $2}' /proc/meminfo)")
	if err != nil {
		v.fail("reading the guest's memory: %v", err)
	}
	var pods, kubelet, ctrd, total, avail int64
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "MEM %d %d %d %d %d", &pods, &kubelet, &ctrd, &total, &avail); err != nil {
		v.fail("guest memory report %q: %v", out, err)
	}
	t.Logf("MEMORY guest used %d of %d MiB; anonymous: control-plane pods %d MiB, kubelet %d MiB, containerd+shims %d MiB",
		(total-avail)>>10, total>>10, pods>>20, kubelet>>20, ctrd>>20)

	// A reboot (here a power-off: qemu stopped, then started again on the same disk) brings the control
	// plane back without a second init: the images are already in containerd, the cluster exists.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-v.ctx.Done()
	cmd = exec.Command(filepath.Join(root, "hack", "boot.sh"), disk)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "QEMU_ACCEL=tcg", "QEMU_MEM=3072", "TFSITE_SEED="+seed,
		fmt.Sprintf("SSH_PORT=%d", freePort(t)), "BOOT_PERSIST=1")
	v = startVM(t, ctx, cmd, filepath.Join(root, "mkosi.output", "bringup-test-reboot.log"))
	v.onStatus = logFailedSteps(t, v, password)
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
		want[3],
	} {
		if err := v.consoleStatusUntilCtx(steps, s.re, s.ok); err != nil {
			v.fail("after the reboot: %s never showed on the console: %v\n%s", s.what, err, v.diagnose(password))
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

// guestShell runs script in the recovery console's shell (entry 10, behind the recovery password)
// and returns what it printed.
func (v *vm) guestShell(password, script string) (string, error) {
	menu := regexp.MustCompile(`Enter a number: `)
	if _, _, err := v.pressEnterUntil(menu); err != nil {
		return "", fmt.Errorf("no recovery console menu: %w", err)
	}
	ctx, cancel := context.WithTimeout(v.ctx, 2*time.Minute)
	defer cancel()
	from := v.con.len()
	for _, s := range []struct {
		send string
		want *regexp.Regexp
	}{
		{"10", regexp.MustCompile(`Recovery password: `)},
		// The root shell's prompt (bash reads its rc files: root@host:/# ).
		{password, regexp.MustCompile(`type exit to return to the menu\.(?s:.*?)# `)},
	} {
		if _, err := io.WriteString(v.stdin, s.send+"\r"); err != nil {
			return "", err
		}
		_, at, err := v.con.wait(ctx, s.want, from)
		if err != nil {
			return "", err
		}
		from = at
	}
	// The markers are split in the command so its echo does not match.
	if _, err := io.WriteString(v.stdin, "echo BEGIN''-OUT; "+script+"; echo END''-OUT\r"); err != nil {
		return "", err
	}
	m, _, err := v.con.wait(ctx, regexp.MustCompile(`(?s)BEGIN-OUT\r?\n(.*?)END-OUT`), from)
	if _, werr := io.WriteString(v.stdin, "exit\r"); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return "", err
	}
	return m[1], nil
}

// logFailedSteps logs each failed bring-up step ("-- name: detail" on the Status screen) once, as
// it is first seen: a retried step's first failure stays in the test's output.
// The first failure of images or kubeadm also logs the guest's diagnosis (the step is retried;
// the test goes on).
func logFailedSteps(t *testing.T, v *vm, password string) func(string) {
	seen := map[string]bool{}
	re := regexp.MustCompile(`(?m)^  -- (\S+): (.*(?:\r?\n  [^ o.-].*)?)`)
	long := regexp.MustCompile(`\.\. kubeadm running for (\d+)m`)
	lookedLong, looked := false, false
	return func(screen string) {
		// kubeadm init takes 2-5 minutes here: past 6, look inside while it still runs.
		if m := long.FindStringSubmatch(screen); m != nil && !lookedLong {
			if n, _ := strconv.Atoi(m[1]); n >= 6 {
				lookedLong = true
				t.Logf("kubeadm init still running after %s minutes; %s", m[1], v.diagnose(password))
			}
		}
		for _, m := range re.FindAllStringSubmatch(screen, -1) {
			line := m[1] + ": " + strings.Join(strings.Fields(m[2]), " ")
			if !seen[line] {
				seen[line] = true
				t.Logf("bring-up step failed (seen on the console): %s", line)
				// images and kubeadm are not expected to fail here (cluster is "not yet" for a
				// while, vrouter reverts by design): look inside at their first failure.
				if (m[1] == "images" || m[1] == "kubeadm") && !looked {
					looked = true
					t.Logf("%s", v.diagnose(password))
				}
			}
		}
	}
}

// diagnose gathers, from the console's shell, what explains a stuck or failed bring-up: the end of
// kubeadm's output, the kubelet's and containerd's last journal lines, memory and disk.
func (v *vm) diagnose(password string) string {
	out, err := v.guestShell(password, "tail -n 25 /var/lib/tfsite/bringup/kubeadm-init.log; "+
		"journalctl -b --no-pager -o cat -n 15 -u kubelet; journalctl -b --no-pager -o cat -n 5 -u containerd; "+
		"journalctl -b --no-pager -o cat -n 10 -u tfsite-bringup; "+
		"ctr -n k8s.io tasks ls; for f in /var/log/pods/*/*/*.log; do echo \"== $f\"; tail -n 4 \"$f\" | cut -c1-240; done; "+
		"date -u; uptime; free -m; df -h / /var")
	if err != nil {
		return fmt.Sprintf("(no diagnosis from the guest's shell: %v)", err)
	}
	return "from the guest:\n" + out
}
