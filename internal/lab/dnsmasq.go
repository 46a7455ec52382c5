package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// DnsmasqArgs returns dnsmasq's command line for cfg: DHCP only (no DNS
// port, no resolv.conf or hosts), in the foreground, answering at once
// (--no-ping skips the ICMP probe before an offer); its log, lease and pid
// files go in dir.
func DnsmasqArgs(cfg DnsmasqConfig, dir string) []string {
	args := []string{
		"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
		"--log-facility=" + filepath.Join(dir, "dnsmasq.log"), "--log-dhcp", "--no-ping", "--user=root", "--group=root",
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

// Dnsmasq is a running dnsmasq. It does not depend on the process that
// started it (its output goes to files in its directory), so a command can
// start a lab and leave it to a script.
type Dnsmasq struct {
	// Dir holds its log (dnsmasq.log), stderr (dnsmasq.err), leases and pid file.
	Dir       string
	LeaseFile string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// StartDnsmasq starts dnsmasq inside ns with its files in dir and waits (up
// to 10 s) until it serves DHCP.
func StartDnsmasq(ns string, cfg DnsmasqConfig, dir string) (*Dnsmasq, error) {
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		return nil, fmt.Errorf("dnsmasq not found: apt-get install dnsmasq-base")
	}
	errf, err := os.Create(filepath.Join(dir, "dnsmasq.err"))
	if err != nil {
		return nil, fmt.Errorf("creating dnsmasq's stderr file: %w", err)
	}
	defer errf.Close()
	d := &Dnsmasq{Dir: dir, LeaseFile: filepath.Join(dir, "leases"), exited: make(chan struct{})}
	d.cmd = Command(ns, DnsmasqArgs(cfg, dir)...)
	d.cmd.Stdout, d.cmd.Stderr = errf, errf
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dnsmasq: %w", err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(d.Log(), "DHCP, IP range") {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("dnsmasq exited at start (%s):\n%s", strings.Join(d.cmd.Args, " "), d.Log())
		case <-deadline:
			d.Stop()
			return nil, fmt.Errorf("dnsmasq not serving after 10s:\n%s", d.Log())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return d, nil
}

// Stop kills dnsmasq and waits for it; safe twice.
func (d *Dnsmasq) Stop() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// Exited is closed when dnsmasq has exited.
func (d *Dnsmasq) Exited() <-chan struct{} { return d.exited }

// Log returns what dnsmasq wrote so far: its stderr, then its log.
func (d *Dnsmasq) Log() string {
	e, _ := os.ReadFile(filepath.Join(d.Dir, "dnsmasq.err"))
	l, _ := os.ReadFile(filepath.Join(d.Dir, "dnsmasq.log"))
	return string(e) + string(l)
}

// Leases returns the lease file's content ("" when empty or absent).
func (d *Dnsmasq) Leases() string {
	b, _ := os.ReadFile(d.LeaseFile)
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
