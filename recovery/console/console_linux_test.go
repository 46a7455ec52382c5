package console

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/internal/passhash"
	"github.com/tfsite/tfsite/internal/testrig"
	"github.com/tfsite/tfsite/recovery/netguard"
)

type backend struct{}

func (backend) Status(context.Context) api.Status {
	return api.Status{Site: "lab-a", Phase: api.PhaseAllocated, Allocation: &api.Allocation{ASN: 64512,
		Pod: netip.MustParsePrefix("10.32.0.0/16"), Service: netip.MustParsePrefix("10.96.0.0/20"), Fabric: netip.MustParsePrefix("10.200.0.0/24")},
		Peers: []api.Peer{{Site: "lab-b", State: api.StateAlive}},
		BringUp: &api.BringUp{Phase: "vrouter-reverted", Error: "vrouter start reverted; delete /var/lib/tfsite/bringup/vrouter-evicted.json to retry",
			Steps:   []api.BringUpStep{{Name: "images", OK: true, Detail: "all 7 control-plane images present in containerd"}},
			Running: &api.BringUpRunning{Name: "kubeadm", Since: time.Now().Add(-90 * time.Second)},
			Vrouter: &api.VrouterOutcome{Reason: "gateway 10.0.0.1 unreachable for 10s"}}}
}
func (backend) Peers(context.Context) []api.Peer                 { return nil }
func (backend) Release(context.Context, string) error            { return nil }
func (backend) BGPPeers(context.Context) ([]site.BGPPeer, error) { return nil, nil }

// TestConsoleEveryEntryOverPTY drives every menu entry through an 80x24
// pseudo-terminal, against a real netguard in a network namespace and the
// agent's real API server on a unix socket.
func TestConsoleEveryEntryOverPTY(t *testing.T) {
	testrig.RequireRoot(t)
	testrig.RequireCommand(t, "ping", "iputils-ping")
	host, gw := testrig.NewNetns(t, "conh"), testrig.NewNetns(t, "cong")
	testrig.Veth(t, host, "eth0", gw, "eth0")
	host.Run("ip", "addr", "add", "10.0.0.10/24", "dev", "eth0")
	host.Run("ip", "route", "add", "default", "via", "10.0.0.1")
	gw.Run("ip", "addr", "add", "10.0.0.1/24", "dev", "eth0")

	r := startConsole(t, host, rigOptions{configured: "correct-horse"})
	tm, cfg, done, rebooted := r.tm, r.cfg, r.done, r.rebooted
	// The password comes from the configuration: no prompt at start.
	tm.Expect("Enter a number: ")
	menuStart := strings.LastIndex(tm.Transcript(), "tfsite recovery console")
	if menu := tm.Transcript()[menuStart:]; strings.Count(menu, "\n") > 23 || strings.Contains(menu, "New recovery password") {
		t.Fatalf("first screen (%d lines):\n%s", strings.Count(menu, "\n"), menu)
	}

	tm.Send("1")
	tm.Expect("site     lab-a")
	tm.Expect("ASN      64512")
	tm.Expect("lab-b")
	tm.Expect("bring-up vrouter-reverted: vrouter start reverted")
	tm.Expect("ok images: all 7 control-plane images present")
	tm.Expect(".. kubeadm running for 1m3") // since 90 s ago: 1m30s or a second more
	tm.Expect("vrouter  REVERTED gateway 10.0.0.1 unreachable for 10s")
	tm.Expect("last network event")
	tm.Send("")

	tm.Send("2")
	tm.Expect("eth0")
	tm.Expect("10.0.0.10/24")
	tm.Expect("default via 10.0.0.1")
	tm.Send("")

	tm.Send("6")
	tm.Expect("Host or address: ")
	tm.Send("10.0.0.1")
	tm.Expect("[p]: ")
	tm.Send("")
	tm.Expect("3 received")
	tm.Send("")

	tm.Send("9")
	tm.Expect("Wrote a support bundle")
	tm.Expect("Press Enter")
	tm.Send("")

	tm.Send("3")
	tm.Expect("Recovery password: ")
	tm.Send("correct-horse")
	tm.Expect("Nothing pending")
	tm.Send("")
	if strings.Contains(tm.Transcript(), "correct-horse") {
		t.Fatal("the password was echoed to the terminal")
	}

	tm.Send("3")
	tm.Expect("Recovery password: ")
	tm.Send("wrong-password")
	tm.Expect("wrong recovery password: nothing was done (1 wrong in a row; next try in 1s)")
	tm.Send("")

	tm.Send("7")
	tm.Expect("Waiting 1s after 1 wrong passwords...")
	tm.Expect("Recovery password: ")
	tm.Send("correct-horse")
	tm.Expect("Paste one public key line: ")
	tm.Send("ssh-ed25519 AAAAnotakey")
	tm.Expect("not added")
	tm.Send("")
	tm.Send("7")
	tm.Expect("Recovery password: ")
	tm.Send("correct-horse")
	tm.Expect("Paste one public key line: ")
	tm.Send(ed25519Key())
	tm.Expect("Added to ")
	tm.Send("")

	tm.Send("5")
	tm.Expect("Recovery password: ")
	tm.Send("correct-horse")
	tm.Expect("Interface (e.g. eth0): ")
	tm.Send("eth0")
	tm.Expect("Address in CIDR form")
	tm.Send("10.0.0.11/24")
	tm.Expect("Gateway (e.g. 192.0.2.1): ")
	tm.Send("10.0.0.1")
	tm.Expect("Confirmed: healthy for 1s")
	tm.Send("")

	useShell(tm, "correct-horse")

	tm.Send("8")
	tm.Expect("Recovery password: ")
	tm.Send("correct-horse")
	tm.Expect("the recovery password comes from the configuration (test config): change")
	tm.Expect("console.passwordHash there")
	tm.Send("")

	tm.Send("12")
	tm.Expect("Recovery password: ")
	tm.Send("correct-horse")
	tm.Expect("Directory or URL (empty: cancel): ")
	tm.Send("/mnt/update/tfsite_9.9")
	tm.Expect("tfsite update: installed 9.9 into /dev/vda3")
	tm.Expect("Type yes: ")
	tm.Send("no")
	tm.Expect("Not rebooting.")
	tm.Send("")

	tm.Send("11")
	tm.Expect("Recovery password: ")
	tm.Send("correct-horse")
	tm.Expect("Type yes: ")
	tm.Send("yes")
	tm.Expect("Rebooting...")
	tm.Send("")

	tm.Send("42")
	tm.Expect(`No entry "42"`)
	tm.Send("")
	tm.Send("0")
	tm.Expect("Bye.")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("console did not exit on 0")
	}

	// What the entries did, checked on disk and in the namespace.
	if b, err := os.ReadFile(cfg.AuthorizedKeys); err != nil || !strings.Contains(string(b), "operator@laptop") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("authorized_keys = %q, %v", b, err)
	}
	if _, err := os.Stat(cfg.PasswordFile); !os.IsNotExist(err) {
		t.Fatalf("a password file was written although the configuration sets the password: %v", err)
	}
	if _, err := os.Stat(rebooted); err != nil {
		t.Fatalf("reboot command not run: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(r.dir, "updated")); err != nil || strings.TrimSpace(string(b)) != "--from /mnt/update/tfsite_9.9" {
		t.Fatalf("update command got %q, %v; want --from and the path typed", b, err)
	}
	if out := host.Run("ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, "10.0.0.11/24") || strings.Contains(out, "10.0.0.10/24") {
		t.Fatalf("static address not kept: %s", out)
	}
	checkBundle(t, cfg.BundleDir)
	for i, line := range strings.Split(strings.ReplaceAll(tm.Transcript(), "\r", ""), "\n") {
		// Exempt: what the operator pasted, and the test's long temp paths.
		if len(line) > 80 && !strings.HasPrefix(line, "Paste one public key line:") && !strings.HasPrefix(line, cfg.BundleDir) {
			t.Errorf("line %d is wider than 80 columns: %q", i, line)
		}
	}
}

// useShell opens the shell entry with password pw, shows that a shell
// answers, leaves it and returns to the menu.
func useShell(tm *testrig.PTY, pw string) {
	tm.Send("10")
	tm.Expect("Recovery password: ")
	tm.Send(pw)
	tm.Expect("type exit to return")
	tm.Send("echo shell-$((40+2))")
	tm.Expect("shell-42")
	tm.Send("exit")
	tm.Expect("Press Enter")
	tm.Send("")
}

type rig struct {
	tm       *testrig.PTY
	cfg      Config
	done     chan error
	rebooted string
	dir      string
	clock    *fakeClock
	stop     context.CancelFunc
}

type rigOptions struct {
	configured string     // the configuration's recovery password (hashed here); "" sets none
	dir        string     // the state of an earlier console (a restart); "" for a new one
	clock      *fakeClock // nil: a new one at 2030-01-01
	log        io.Writer  // where the console logs (the journal); nil discards
}

// startConsole runs a console on a fresh 80x24 pseudo-terminal, inside
// host's namespace (nil: this one), with a real netguard and the agent's real
// API server; its clock is fake, so delays after wrong passwords cost nothing.
func startConsole(t *testing.T, host *testrig.Netns, o rigOptions) rig {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	if o.log == nil {
		o.log = io.Discard
	}
	if o.clock == nil {
		o.clock = &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	log := slog.New(slog.NewTextHandler(o.log, nil))
	sock := testrig.ServeAPI(t, backend{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ncfg := netguard.Default()
	ncfg.StateDir, ncfg.Timeout, ncfg.Settle = filepath.Join(dir, "net"), 8*time.Second, time.Second
	g, err := netguard.New(ncfg, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.PasswordFile, cfg.LockoutFile = filepath.Join(dir, "console", "password"), filepath.Join(dir, "console", "lockout.json")
	cfg.AuthorizedKeys, cfg.BundleDir = filepath.Join(dir, "ssh", "authorized_keys"), filepath.Join(dir, "bundles")
	cfg.NetStateDir, cfg.Shell, cfg.TTY = ncfg.StateDir, "/bin/sh", "pts-test"
	if o.configured != "" {
		h, err := passhash.New(o.configured, passhash.Recommended)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConfiguredHash = func(context.Context) (string, string, error) { return h, "test config", nil }
	}
	rebooted := filepath.Join(dir, "rebooted")
	cfg.RebootCommand = []string{"sh", "-c", "echo yes > " + rebooted}
	cfg.UpdateCommand = []string{"sh", "-c", `echo "$1 $2" > ` + filepath.Join(dir, "updated") + `; echo "tfsite update: installed 9.9 into /dev/vda3"`, "update"}
	con, err := New(cfg, api.NewClient(sock), g, log)
	if err != nil {
		t.Fatal(err)
	}
	con.clock = o.clock
	t.Cleanup(con.Close)
	tm := testrig.OpenPTY(t)
	done := make(chan error, 1)
	run := func() error { return con.Run(ctx, tm.TTY, tm.TTY) }
	go func() {
		if host == nil {
			done <- run()
			return
		}
		done <- host.Do(run)
	}()
	return rig{tm: tm, cfg: cfg, done: done, rebooted: rebooted, dir: dir, clock: o.clock, stop: cancel}
}

// fakeClock is the console's clock in tests: Sleep moves time on at once
// and records how long was asked.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	f.slept = append(f.slept, d)
	return nil
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fakeClock) sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.slept...)
}

// TestConsoleResetUnderlayToDHCP: TF took eth0 over as vhost0 with a wrong
// gateway; the reset entry releases it and applies a real DHCP lease
// (dnsmasq), guarded. Without a DHCP server the reset is reverted. No
// recovery password is set: the reset is network recovery, offered anyway.
func TestConsoleResetUnderlayToDHCP(t *testing.T) {
	testrig.RequireRoot(t)
	testrig.RequireCommand(t, "dnsmasq", "dnsmasq-base")
	for _, withServer := range []bool{true, false} {
		t.Run(map[bool]string{true: "dhcp", false: "no-dhcp-server"}[withServer], func(t *testing.T) {
			host, gw := testrig.NewNetns(t, "rsth"), testrig.NewNetns(t, "rstg")
			testrig.Veth(t, host, "eth0", gw, "eth0")
			gw.Run("ip", "addr", "add", "10.0.0.1/24", "dev", "eth0")
			host.Run("ip", "link", "add", "vhost0", "type", "bridge")
			host.Run("ip", "link", "set", "vhost0", "up")
			host.Run("ip", "link", "set", "eth0", "master", "vhost0")
			host.Run("ip", "addr", "add", "10.0.0.50/24", "dev", "vhost0")
			host.Run("ip", "route", "add", "default", "via", "10.0.0.20", "dev", "vhost0")
			if withServer {
				testrig.StartDnsmasq(t, gw, testrig.DnsmasqConfig{Interface: "eth0", Range: "10.0.0.100,10.0.0.100,255.255.255.0,1h", Options: []string{"3,10.0.0.1"}})
			}
			before := host.Run("ip", "-4", "-o", "addr")
			// No recovery password anywhere (first boot): network
			// recovery still runs, without asking.
			r := startConsole(t, host, rigOptions{})
			r.tm.Expect("Enter a number: ")
			r.tm.Send("4")
			r.tm.Expect("No recovery password is set: network recovery runs without one.")
			r.tm.Expect("Underlay interface []: ")
			r.tm.Send("eth0")
			if !withServer {
				r.tm.Expect("change reverted: applying failed: DHCP on eth0")
				r.tm.Send("")
				if after := host.Run("ip", "-4", "-o", "addr"); after != before {
					t.Fatalf("failed reset not reverted:\nbefore %s\nafter %s", before, after)
				}
				return
			}
			r.tm.Expect("Confirmed: healthy for 1s")
			r.tm.Send("")
			if out := host.Run("ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, "10.0.0.100/24") || strings.Contains(out, "master vhost0") {
				t.Fatalf("eth0 after reset: %s", out)
			}
			if out := host.Run("ip", "route", "show", "default"); strings.TrimSpace(out) == "" || !strings.Contains(out, "via 10.0.0.1 dev eth0") || strings.Contains(out, "10.0.0.20") {
				t.Fatalf("default route after reset: %q", out)
			}
		})
	}
}

func checkBundle(t *testing.T, dir string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "tfsite-support-*.tar.gz"))
	if len(m) != 1 {
		t.Fatalf("bundles %v, want one", m)
	}
	f, err := os.Open(m[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names[h.Name] = true
	}
	for _, want := range []string{"net-show.json", "status.json", "ip-route.txt", "version.txt"} {
		if !names[want] {
			t.Errorf("bundle lacks %s (has %v)", want, names)
		}
	}
}
