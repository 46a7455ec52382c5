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

	"github.com/creack/pty"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/internal/testrig"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// term is the operator's side of a pseudo-terminal, expect-style.
type term struct {
	t    *testing.T
	ptmx *os.File
	mu   sync.Mutex
	buf  strings.Builder
	pos  int
}

func (tm *term) pump() {
	b := make([]byte, 4096)
	for {
		n, err := tm.ptmx.Read(b)
		tm.mu.Lock()
		tm.buf.Write(b[:n])
		tm.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (tm *term) expect(s string) {
	tm.t.Helper()
	end := time.Now().Add(20 * time.Second)
	for time.Now().Before(end) {
		tm.mu.Lock()
		all := tm.buf.String()
		tm.mu.Unlock()
		if i := strings.Index(all[tm.pos:], s); i >= 0 {
			tm.pos += i + len(s)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.t.Fatalf("terminal never showed %q; it shows after the last match:\n%s", s, tm.buf.String()[tm.pos:])
}

func (tm *term) send(line string) {
	tm.t.Helper()
	if _, err := tm.ptmx.Write([]byte(line + "\r")); err != nil {
		tm.t.Fatal(err)
	}
}

func (tm *term) transcript() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.buf.String()
}

type backend struct{}

func (backend) Status(context.Context) api.Status {
	return api.Status{Site: "lab-a", Phase: api.PhaseAllocated, Allocation: &api.Allocation{ASN: 64512,
		Pod: netip.MustParsePrefix("10.32.0.0/16"), Service: netip.MustParsePrefix("10.96.0.0/20"), Fabric: netip.MustParsePrefix("10.200.0.0/24")},
		Peers: []api.Peer{{Site: "lab-b", State: api.StateAlive}},
		BringUp: &api.BringUp{Phase: "vrouter-reverted", Error: "vrouter start reverted; delete /var/lib/tfsite/bringup/vrouter-evicted.json to retry",
			Vrouter: &api.VrouterOutcome{Reason: "gateway 10.0.0.1 unreachable for 10s"}}}
}
func (backend) Peers(context.Context) []api.Peer                { return nil }
func (backend) Release(context.Context, string) error           { return nil }
func (backend) BGPPeers(context.Context) ([]api.BGPPeer, error) { return nil, nil }

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

	r := startConsole(t, host)
	tm, cfg, done, rebooted := r.tm, r.cfg, r.done, r.rebooted
	// First boot: no password yet; skipping keeps the read-only entries.
	tm.expect("No recovery password is set")
	tm.expect("New recovery password")
	tm.send("")
	tm.expect("Enter a number: ")
	menuStart := strings.LastIndex(tm.transcript(), "tfsite recovery console")
	if menu := tm.transcript()[menuStart:]; strings.Count(menu, "\n") > 23 {
		t.Fatalf("menu is %d lines, more than a 24-line terminal:\n%s", strings.Count(menu, "\n"), menu)
	}

	tm.send("1")
	tm.expect("site     lab-a")
	tm.expect("ASN      64512")
	tm.expect("lab-b")
	tm.expect("bring-up vrouter-reverted: vrouter start reverted")
	tm.expect("vrouter  REVERTED gateway 10.0.0.1 unreachable for 10s")
	tm.expect("last network event")
	tm.send("")

	tm.send("2")
	tm.expect("eth0")
	tm.expect("10.0.0.10/24")
	tm.expect("default via 10.0.0.1")
	tm.send("")

	tm.send("6")
	tm.expect("Host or address: ")
	tm.send("10.0.0.1")
	tm.expect("[p]: ")
	tm.send("")
	tm.expect("3 received")
	tm.send("")

	tm.send("9")
	tm.expect("Wrote a support bundle")
	tm.expect("Press Enter")
	tm.send("")

	// A destructive entry with no password set: set it first.
	tm.send("3")
	tm.expect("set it first")
	tm.expect("New recovery password")
	tm.send("correct-horse")
	tm.expect("Repeat it: ")
	tm.send("correct-horse")
	tm.expect("Recovery password set.")
	tm.expect("Nothing pending")
	tm.send("")
	if strings.Contains(tm.transcript(), "correct-horse") {
		t.Fatal("the password was echoed to the terminal")
	}

	tm.send("3")
	tm.expect("Recovery password: ")
	tm.send("wrong-password")
	tm.expect("wrong recovery password: nothing was done")
	tm.send("")

	tm.send("7")
	tm.expect("Recovery password: ")
	tm.send("correct-horse")
	tm.expect("Paste one public key line: ")
	tm.send("ssh-ed25519 AAAAnotakey")
	tm.expect("not added")
	tm.send("")
	tm.send("7")
	tm.expect("Recovery password: ")
	tm.send("correct-horse")
	tm.expect("Paste one public key line: ")
	tm.send(ed25519Key())
	tm.expect("Added to ")
	tm.send("")

	tm.send("5")
	tm.expect("Recovery password: ")
	tm.send("correct-horse")
	tm.expect("Interface (e.g. eth0): ")
	tm.send("eth0")
	tm.expect("Address in CIDR form")
	tm.send("10.0.0.11/24")
	tm.expect("Gateway (e.g. 192.0.2.1): ")
	tm.send("10.0.0.1")
	tm.expect("Confirmed: healthy for 1s")
	tm.send("")

	tm.send("10")
	tm.expect("Recovery password: ")
	tm.send("correct-horse")
	tm.expect("type exit to return")
	tm.send("echo shell-$((40+2))")
	tm.expect("shell-42")
	tm.send("exit")
	tm.expect("Press Enter")
	tm.send("")

	tm.send("8")
	tm.expect("Recovery password: ")
	tm.send("correct-horse")
	tm.expect("New recovery password")
	tm.send("second-password")
	tm.expect("Repeat it: ")
	tm.send("second-password")
	tm.expect("Recovery password set.")
	tm.send("")

	tm.send("11")
	tm.expect("Recovery password: ")
	tm.send("second-password")
	tm.expect("Type yes: ")
	tm.send("yes")
	tm.expect("Rebooting...")
	tm.send("")

	tm.send("42")
	tm.expect(`No entry "42"`)
	tm.send("")
	tm.send("0")
	tm.expect("Bye.")
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
	stored, _ := os.ReadFile(cfg.PasswordFile)
	if ok, err := CheckPassword(string(stored), "second-password"); !ok || err != nil || strings.Contains(string(stored), "second-password") {
		t.Fatalf("password not stored hashed: %q %v", stored, err)
	}
	if _, err := os.Stat(rebooted); err != nil {
		t.Fatalf("reboot command not run: %v", err)
	}
	if out := host.Run("ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, "10.0.0.11/24") || strings.Contains(out, "10.0.0.10/24") {
		t.Fatalf("static address not kept: %s", out)
	}
	checkBundle(t, cfg.BundleDir)
	for i, line := range strings.Split(strings.ReplaceAll(tm.transcript(), "\r", ""), "\n") {
		// Exempt: what the operator pasted, and the test's long temp paths.
		if len(line) > 80 && !strings.HasPrefix(line, "Paste one public key line:") && !strings.HasPrefix(line, cfg.BundleDir) {
			t.Errorf("line %d is wider than 80 columns: %q", i, line)
		}
	}
}

type rig struct {
	tm       *term
	cfg      Config
	done     chan error
	rebooted string
}

// startConsole runs a console inside host's namespace on a fresh 80x24
// pseudo-terminal, with a real netguard and the agent's real API server.
func startConsole(t *testing.T, host *testrig.Netns) rig {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	cfg.PasswordFile, cfg.AuthorizedKeys, cfg.BundleDir = filepath.Join(dir, "pw"), filepath.Join(dir, "ssh", "authorized_keys"), filepath.Join(dir, "bundles")
	cfg.NetStateDir, cfg.Shell, cfg.KDFIterations = ncfg.StateDir, "/bin/sh", 1000
	rebooted := filepath.Join(dir, "rebooted")
	cfg.RebootCommand = []string{"sh", "-c", "echo yes > " + rebooted}
	con, err := New(cfg, api.NewClient(sock), g, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(con.Close)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		t.Fatal(err)
	}
	tm := &term{t: t, ptmx: ptmx}
	go tm.pump()
	done := make(chan error, 1)
	go func() { done <- host.Do(func() error { return con.Run(ctx, tty, tty) }) }()
	return rig{tm: tm, cfg: cfg, done: done, rebooted: rebooted}
}

// TestConsoleResetUnderlayToDHCP: TF took eth0 over as vhost0 with a wrong
// gateway; the reset entry releases it and applies a real DHCP lease
// (dnsmasq), guarded. Without a DHCP server the reset is reverted.
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
			r := startConsole(t, host)
			r.tm.expect("New recovery password")
			r.tm.send("")
			r.tm.send("4")
			r.tm.expect("set it first")
			r.tm.expect("New recovery password")
			r.tm.send("correct-horse")
			r.tm.expect("Repeat it: ")
			r.tm.send("correct-horse")
			r.tm.expect("Underlay interface []: ")
			r.tm.send("eth0")
			if !withServer {
				r.tm.expect("change reverted: applying failed: DHCP on eth0")
				r.tm.send("")
				if after := host.Run("ip", "-4", "-o", "addr"); after != before {
					t.Fatalf("failed reset not reverted:\nbefore %s\nafter %s", before, after)
				}
				return
			}
			r.tm.expect("Confirmed: healthy for 1s")
			r.tm.send("")
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
