package testrig

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DnsmasqConfig describes one real dnsmasq DHCP server in a namespace.
type DnsmasqConfig struct {
	// Interface is the namespace's interface to serve; it must carry an
	// address inside Range's subnet (dnsmasq picks the range by it).
	Interface string
	// Range is the --dhcp-range value, e.g. "192.0.2.100,192.0.2.150,255.255.255.0,1h".
	Range string
	// Options are --dhcp-option values, e.g. "3,192.0.2.254" or
	// "121,0.0.0.0/0,192.0.2.1". dnsmasq sends an option only when the
	// client's parameter request list asks for it.
	Options []string
	// Args are extra command-line flags, e.g. "--dhcp-authoritative".
	Args []string
}

// Dnsmasq is a running dnsmasq; it is stopped when the test ends.
type Dnsmasq struct {
	// LeaseFile is the lease database (in the test's temp dir).
	LeaseFile string
	t         testing.TB
	log       *lockedBuffer
	exited    chan struct{}
}

// DnsmasqArgs returns dnsmasq's command line for cfg: DHCP only (no DNS
// port, no resolv.conf or hosts), in the foreground, logging to stderr,
// answering at once (--no-ping skips the ICMP probe before an offer).
func DnsmasqArgs(cfg DnsmasqConfig, dir string) []string {
	args := []string{
		"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
		"--log-facility=-", "--log-dhcp", "--no-ping", "--user=root", "--group=root",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid"),
		"--interface=" + cfg.Interface, "--bind-interfaces",
		"--dhcp-range=" + cfg.Range,
	}
	for _, o := range cfg.Options {
		args = append(args, "--dhcp-option="+o)
	}
	return append(args, cfg.Args...)
}

// StartDnsmasq starts dnsmasq inside ns and waits until it serves DHCP.
// Its log is reported on failure; Log returns it.
func StartDnsmasq(t testing.TB, ns *Netns, cfg DnsmasqConfig) *Dnsmasq {
	t.Helper()
	RequireCommand(t, "dnsmasq", "dnsmasq-base")
	dir := t.TempDir()
	d := &Dnsmasq{LeaseFile: filepath.Join(dir, "leases"), t: t, log: &lockedBuffer{}, exited: make(chan struct{})}
	cmd := ns.Command(DnsmasqArgs(cfg, dir)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dnsmasq: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.log.WriteLine(sc.Text())
			if strings.Contains(sc.Text(), "DHCP, IP range") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.exited
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", d.Log())
		}
	})
	select {
	case <-ready:
	case <-d.exited:
		t.Fatalf("dnsmasq exited at start (%s):\n%s", strings.Join(cmd.Args, " "), d.Log())
	case <-time.After(10 * time.Second):
		t.Fatalf("dnsmasq not serving after 10s:\n%s", d.Log())
	}
	return d
}

// Log returns what dnsmasq logged so far.
func (d *Dnsmasq) Log() string { return d.log.String() }

// Leases returns the lease file's content ("" when empty or absent).
func (d *Dnsmasq) Leases() string {
	b, err := os.ReadFile(d.LeaseFile)
	if err != nil {
		return ""
	}
	return string(b)
}

// WaitLog waits until dnsmasq logged a line containing s.
func (d *Dnsmasq) WaitLog(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(d.Log(), s) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("dnsmasq did not log %q within %s", s, timeout)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteLine(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
	l.b.WriteByte('\n')
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
