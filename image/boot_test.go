// Package image holds the appliance image's tree (rootfs/) and its boot test: the test boots the
// image built by `make image` under qemu and asserts on what the serial console shows.
package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Console markers. The units print them (image/rootfs/usr/lib/tfsite/*, systemd's status lines).
// Markers with values end in a line break: output arrives in chunks that may split a line.
var (
	reGateway      = regexp.MustCompile(`tfsite-discover: gateway=10\.0\.2\.2 source=(\S+)[^\r\n]*by=(\S+)[ \r\n]`)
	reGatewayOther = regexp.MustCompile(`tfsite-discover: gateway=(\S+)[ \r\n]`)
	reAgentReady   = regexp.MustCompile(`tfsite-agent: ready \(READY=1\)[^\r\n]*[\r\n]|Started [^\r\n]*(tfsite-agent\.service|tfsite node agent)`)
	reAgentFailed  = regexp.MustCompile(`Failed to start [^\r\n]*(tfsite-agent|tfsite node agent)|tfsite-agent\.service: (Main process exited|Failed|Watchdog)`)
	reAnsi         = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
)

// console collects qemu's serial output and lets the test wait for patterns in it.
type console struct {
	mu    sync.Mutex
	buf   bytes.Buffer // ANSI-stripped output
	start time.Time
	log   io.Writer
	grow  chan struct{}
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(reAnsi.ReplaceAll(p, nil))
	c.mu.Unlock()
	c.log.Write(p)
	select {
	case c.grow <- struct{}{}:
	default:
	}
	return len(p), nil
}

// wait returns the first match of re in the output at or after offset from, with the offset after it.
func (c *console) wait(ctx context.Context, re *regexp.Regexp, from int) ([]string, int, error) {
	for {
		c.mu.Lock()
		b := c.buf.Bytes()
		if from > len(b) {
			from = len(b)
		}
		loc := re.FindSubmatchIndex(b[from:])
		var m []string
		if loc != nil {
			for i := 0; i+1 < len(loc); i += 2 {
				if loc[i] < 0 {
					m = append(m, "")
					continue
				}
				m = append(m, string(b[from+loc[i]:from+loc[i+1]]))
			}
		}
		c.mu.Unlock()
		if m != nil {
			return m, from + loc[1], nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("waiting %s for %q on the serial console: %w", time.Since(c.start).Round(time.Second), re, ctx.Err())
		case <-c.grow:
		case <-time.After(time.Second):
		}
	}
}

func (c *console) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Len()
}

// text is what the console printed from offset from on.
func (c *console) text(from int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf.Bytes()
	return string(b[min(from, len(b)):])
}

func (c *console) since() time.Duration { return time.Since(c.start).Round(100 * time.Millisecond) }

// vm is one qemu started through hack/boot.sh, with its serial console collected.
type vm struct {
	con   *console
	stdin io.Writer
	// ctx ends when the test's context does or when qemu exits, so waits on a dead VM fail at once.
	ctx     context.Context
	logPath string
	t       *testing.T
	// onStatus, when set, sees each Status screen consoleStatusUntil reads.
	onStatus func(screen string)
}

// startVM starts cmd (hack/boot.sh, possibly through `ip netns exec`) with its output collected as
// the serial console, logged to logPath. qemu is stopped when the test ends.
func startVM(t *testing.T, parent context.Context, cmd *exec.Cmd, logPath string) *vm {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	con := &console{log: logf, grow: make(chan struct{}, 1)}
	cmd.Stdout, cmd.Stderr = con, con
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	con.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	ctx, cancel := context.WithCancel(parent)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
		cancel()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return &vm{con: con, stdin: stdin, ctx: ctx, logPath: logPath, t: t}
}

// pressEnterUntil sends a carriage return on the serial line every few seconds until re appears in
// the output after the first one. The recovery console may open the line only after the agent is
// ready, and input that arrives before (or as it resets the line) is lost.
func (v *vm) pressEnterUntil(re *regexp.Regexp) ([]string, int, error) {
	from := v.con.len()
	for {
		if _, err := io.WriteString(v.stdin, "\r"); err != nil {
			return nil, 0, fmt.Errorf("writing to the serial console: %w", err)
		}
		ctx, cancel := context.WithTimeout(v.ctx, 5*time.Second)
		m, next, err := v.con.wait(ctx, re, from)
		cancel()
		if err == nil || v.ctx.Err() != nil {
			return m, next, err
		}
	}
}

// fail ends the test with the last lines of this VM's serial console.
func (v *vm) fail(format string, a ...any) {
	v.t.Helper()
	v.t.Fatalf(format+"\n(serial console log: %s; last lines:)\n%s", append(a, v.logPath, tail(v.con, 30))...)
}

// hasSubcommand mirrors image/rootfs/usr/lib/tfsite/has-subcommand for the staged binary.
func hasSubcommand(bin string, words ...string) bool {
	out, _ := exec.Command(bin, append(words, "--help")...).Output()
	want := "  tfsite " + strings.Join(words, " ")
	for _, l := range strings.Split(string(out), "\n") {
		if l == want || strings.HasPrefix(l, want+" ") {
			return true
		}
	}
	return false
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: not a duration (e.g. 10m): %v", name, v, err)
	}
	return d
}

// TestBootImage boots mkosi.output/tfsite.raw under qemu (TCG; OVMF + systemd-boot + UKI, or direct
// kernel boot with TFSITE_BOOT_MODE=kernel) with a zero-touch configuration for a one-site lab (a
// NoCloud seed disk, or tfsite.* kernel parameters in kernel mode) and asserts on the serial console:
// the underlay gateway 10.0.2.2 is discovered, the agent reports ready (systemd prints "Started" for
// a Type=notify unit only after READY=1), and the console on ttyS0 answers.
//
// Run with `make test-image` (builds the image first), or TFSITE_IMAGE_TEST=1 go test ./image/.
func TestBootImage(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(root, "mkosi.output", "tfsite.raw")
	_, rawErr := os.Stat(raw)
	switch {
	case os.Getenv("TFSITE_IMAGE_TEST") == "1":
		if rawErr != nil {
			t.Fatalf("TFSITE_IMAGE_TEST=1 but %s is missing: run make image (or make test-image)", raw)
		}
	default:
		// Not even in CI: an image left from an earlier build may be stale;
		// `make test` runs this through `make boot-test`, which builds first.
		t.Skip("boot test: set TFSITE_IMAGE_TEST=1 after make image, or run make test-image (needs mkosi 24.3 and qemu: hack/image-deps.sh)")
	}
	for _, c := range []string{"qemu-system-x86_64", "mkfs.fat", "mcopy"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: run hack/image-deps.sh", c)
		}
	}
	staged := filepath.Join(root, ".cache", "image-stage", "usr", "bin", "tfsite")
	if _, err := os.Stat(staged); err != nil {
		t.Fatalf("the binary staged into the image (%s) is missing: run make image", staged)
	}
	// The image's units run a tfsite subcommand only when the binary has it
	// (has-subcommand); the binary has all three, so a missing one here is a
	// regression that would otherwise boot "fine" with units skipped. The
	// agent itself is the separate tfsite-agent binary (no condition).
	// The list has-subcommand reads at boot (hack/image-build.sh) must agree.
	list, err := os.ReadFile(filepath.Join(root, ".cache", "image-stage", "usr", "lib", "tfsite", "subcommands"))
	if err != nil {
		t.Fatalf("the staged subcommand list is missing (%v): run make image", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(staged), "tfsite-agent")); err != nil {
		t.Fatalf("tfsite-agent is not staged into the image (%v): run make image", err)
	}
	for _, sub := range []string{"bringup", "console", "discover"} {
		if !hasSubcommand(staged, sub) {
			t.Fatalf("the staged binary %s has no `tfsite %s` (or has-subcommand no longer recognises it)", staged, sub)
		}
		if !slices.Contains(strings.Split(string(list), "\n"), sub) {
			t.Fatalf("the image's subcommand list (.cache/image-stage/usr/lib/tfsite/subcommands) lacks %q although the binary has it: hack/image-build.sh wrote a wrong list", sub)
		}
	}

	mode := os.Getenv("TFSITE_BOOT_MODE")
	if mode == "" {
		mode = "uefi"
	}
	args := []string{filepath.Join(root, "hack", "boot.sh")}
	env := append(os.Environ(), "QEMU_ACCEL=tcg", fmt.Sprintf("SSH_PORT=%d", freePort(t)))
	gossipKey := labKey(t)
	switch mode {
	case "uefi":
		args = append(args, raw)
		env = append(env, "TFSITE_SEED="+labSeed(t, root, gossipKey))
	case "kernel":
		// Zero touch through the kernel command line.
		args = append(args, "--kernel")
		env = append(env, "TFSITE_CMDLINE=tfsite.site=lab-a tfsite.voters=lab-a tfsite.key="+gossipKey)
	default:
		t.Fatalf("TFSITE_BOOT_MODE=%q: want uefi or kernel", mode)
	}

	timeout := envDuration(t, "TFSITE_BOOT_TIMEOUT", 10*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = root
	cmd.Env = env
	logPath := filepath.Join(root, "mkosi.output", "boot-test.log")
	v := startVM(t, ctx, cmd, logPath)
	con := v.con
	fail := v.fail
	ctx = v.ctx

	// 1. the underlay gateway
	m, _, err := con.wait(ctx, reGatewayOther, 0)
	if err != nil {
		fail("no discovery report: %v", err)
	}
	if m[1] != "10.0.2.2" {
		fail("discovered gateway %s, want 10.0.2.2 (qemu user network)", m[1])
	}
	m, _, err = con.wait(ctx, reGateway, 0)
	if err != nil {
		fail("discovery report incomplete: %v", err)
	}
	gatewayAt := con.since()
	t.Logf("gateway 10.0.2.2 (source %s, by %s) at %s", m[1], m[2], gatewayAt)
	if m[2] != "tfsite-discover" {
		fail("the image has tfsite discover but the gateway came from %s", m[2])
	}

	// 2. the agent
	either := regexp.MustCompile(reAgentReady.String() + "|" + reAgentFailed.String())
	m, _, err = con.wait(ctx, either, 0)
	if err != nil {
		fail("agent never reported ready: %v", err)
	}
	if !reAgentReady.MatchString(m[0]) {
		fail("agent failed: %q", m[0])
	}
	readyAt := con.since()
	t.Logf("agent ready (Type=notify READY=1) at %s: %s", readyAt, strings.TrimSpace(m[0]))

	// 3. the console on ttyS0 answers a keypress
	re := regexp.MustCompile(envOr("TFSITE_CONSOLE_EXPECT", `tfsite recovery console`))
	if _, _, err := v.pressEnterUntil(re); err != nil {
		fail("the recovery console did not answer on ttyS0: %v", err)
	}
	t.Logf("recovery console answered on ttyS0 at %s", con.since())

	// 4. bring-up runs from the image's config: this VM is far below TF's 32 GiB, so the agent's
	// preflight refuses kubeadm init and says why, in status on the console.
	reBringUp := regexp.MustCompile(`bring-up preflight-failed: preflight failed, kubeadm init not run: memory`)
	if err := v.consoleStatusUntil(reBringUp, nil); err != nil {
		fail("bring-up did not report the failed memory preflight on the console: %v", err)
	}
	t.Logf("bring-up refused kubeadm init on this small VM (preflight, memory) at %s", con.since())
	t.Logf("BOOT mode=%s gateway=%s ready=%s console=%s", mode, gatewayAt, readyAt, con.since())
}

// consoleStatusUntil opens the recovery console's Status entry (1) until its output matches re
// and ok (nil: any match) accepts the match. Status may be asked before the agent knows what the
// test waits for: it asks again (Enter returns to the menu) every 2 s until the test's time is up.
func (v *vm) consoleStatusUntil(re *regexp.Regexp, ok func(m []string) bool) error {
	return v.consoleStatusUntilCtx(v.ctx, re, ok)
}

// consoleStatusUntilCtx is consoleStatusUntil giving up when ctx ends (which may be before the VM's
// time is up, leaving time to look around in the guest). Each Status screen goes to v.onStatus.
func (v *vm) consoleStatusUntilCtx(ctx context.Context, re *regexp.Regexp, ok func(m []string) bool) error {
	menu := regexp.MustCompile(`Enter a number: `)
	// Enter redraws the menu (the console starts on it; no recovery password is configured here).
	if _, _, err := v.pressEnterUntil(menu); err != nil {
		return fmt.Errorf("no recovery console menu: %w", err)
	}
	for {
		from := v.con.len()
		if _, err := io.WriteString(v.stdin, "1\r"); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, _, err := v.con.wait(wctx, re, from)
		cancel()
		if v.onStatus != nil {
			v.onStatus(v.con.text(from))
		}
		if err == nil && (ok == nil || ok(m)) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("status never showed %q: %w", re, ctx.Err())
		}
		next := v.con.len()
		if _, err := io.WriteString(v.stdin, "\r"); err != nil {
			return err
		}
		if _, _, err := v.con.wait(ctx, menu, next); err != nil {
			return fmt.Errorf("recovery console did not return to the menu: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("status never showed %q: %w", re, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// labKey is a fresh gossip key: the agent refuses to run without one
// (docs/config.md), so the lab gets one, as an operator would.
func labKey(t *testing.T) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// labSeed makes the zero-touch configuration of a one-site lab (site lab-a, its own voter) as a
// NoCloud seed: a vfat volume labelled CIDATA, made without mounting (hack/image-seed.sh).
func labSeed(t *testing.T, root, gossipKey string) string {
	t.Helper()
	return seedWith(t, root, "#cloud-config\ntfsite:\n  site: lab-a\n  voters: [lab-a]\n  gossip: {key: "+gossipKey+"}\n")
}

// freePort is a free loopback port (for the guest's sshd forward, so VMs do not collide).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func tail(c *console, n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(c.buf.Bytes()))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
