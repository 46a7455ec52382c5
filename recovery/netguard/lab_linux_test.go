package netguard

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

// lab is the lockout topology: host eth0 and a "master" node on one
// segment (a bridge in the gateway netns), an operator behind the gateway.
//
//	operator 10.9.0.2 ── gw 10.9.0.1 | br0 10.0.0.1 ── host eth0 10.0.0.10
//	                                               └── master 10.0.0.20 (no forwarding)
type lab struct {
	host, gw, master, operator *testrig.Netns
}

const (
	hostAddr     = "10.0.0.10"
	gwAddr       = "10.0.0.1"
	masterAddr   = "10.0.0.20"
	operatorAddr = "10.9.0.2"
	hostTCPPort  = 2222
)

func newLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{
		host:     testrig.NewNetns(t, "host"),
		gw:       testrig.NewNetns(t, "gw"),
		master:   testrig.NewNetns(t, "mst"),
		operator: testrig.NewNetns(t, "op"),
	}
	l.gw.Run("ip", "link", "add", "br0", "type", "bridge")
	l.gw.Run("ip", "link", "set", "br0", "up")
	testrig.Veth(t, l.host, "eth0", l.gw, "h0")
	testrig.Veth(t, l.master, "eth0", l.gw, "m0")
	testrig.Veth(t, l.operator, "eth0", l.gw, "eth1")
	l.gw.Run("ip", "link", "set", "h0", "master", "br0")
	l.gw.Run("ip", "link", "set", "m0", "master", "br0")
	l.gw.Run("ip", "addr", "add", gwAddr+"/24", "dev", "br0")
	l.gw.Run("ip", "addr", "add", "10.9.0.1/24", "dev", "eth1")
	l.gw.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.host.Run("ip", "addr", "add", hostAddr+"/24", "dev", "eth0")
	l.host.Run("ip", "route", "add", "default", "via", gwAddr)
	l.master.Run("ip", "addr", "add", masterAddr+"/24", "dev", "eth0")
	l.master.Run("ip", "route", "add", "default", "via", gwAddr)
	l.operator.Run("ip", "addr", "add", operatorAddr+"/24", "dev", "eth0")
	l.operator.Run("ip", "route", "add", "default", "via", "10.9.0.1")
	// The host's "sshd": a TCP listener inside its namespace.
	var ln net.Listener
	if err := l.host.Do(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", hostTCPPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptAll(ln)
	// The operator side runs a service the host probes (an API server, a voter site).
	if err := l.operator.Do(func() error {
		oln, err := net.Listen("tcp", ":6443")
		if err != nil {
			return err
		}
		t.Cleanup(func() { oln.Close() })
		go acceptAll(oln)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.operatorReaches(time.Second); err != nil {
		t.Fatalf("lab broken before any change: %v", err)
	}
	return l
}

// operatorReaches reports whether the operator gets both an echo reply and
// a TCP connection from the host.
func (l *lab) operatorReaches(timeout time.Duration) error {
	w := fmt.Sprintf("%.1f", max(timeout.Seconds(), 0.2))
	if out, err := l.operator.Command("ping", "-n", "-c1", "-W", w, hostAddr).CombinedOutput(); err != nil {
		return fmt.Errorf("ping %s from operator: %v: %s", hostAddr, err, strings.TrimSpace(lastLine(string(out))))
	}
	return l.operator.Do(func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", hostAddr, hostTCPPort), timeout)
		if err != nil {
			return fmt.Errorf("tcp from operator: %w", err)
		}
		return c.Close()
	})
}

func acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// waitLockedOut waits until the operator cannot reach the host.
func (l *lab) waitLockedOut(t testing.TB, within time.Duration) time.Time {
	t.Helper()
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		if l.operatorReaches(300*time.Millisecond) != nil {
			return time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the operator was never locked out within %s: the emulated takeover does not break access", within)
	return time.Time{}
}

// waitRegained waits until the operator reaches the host again; it returns when.
func (l *lab) waitRegained(within time.Duration) (time.Time, error) {
	end := time.Now().Add(within)
	var err error
	for time.Now().Before(end) {
		if err = l.operatorReaches(300 * time.Millisecond); err == nil {
			return time.Now(), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, errors.Join(errors.New("operator did not regain access"), err)
}

// takeover is TF's vhost0 takeover with the one-line install's wrong
// VROUTER_GATEWAY (the master's address), as a plan.
var labTakeoverPlan = fmt.Sprintf(`
description: vhost0 takeover with VROUTER_GATEWAY=%[1]s
operations:
  - {op: add-link, link: vhost0, kind: bridge}
  - {op: link-up, link: vhost0}
  - {op: set-master, link: eth0, master: vhost0}
  - {op: move-addresses, link: eth0, target: vhost0}
  - {op: replace-default-route, gateway: %[1]s, link: vhost0}
probes:
  gateway: auto
  targets: ["icmp:%[2]s", "tcp:%[2]s:6443"]
`, masterAddr, operatorAddr)

func requireCommands(t testing.TB) {
	t.Helper()
	testrig.RequireCommand(t, "ping", "iputils-ping")
	testrig.RequireCommand(t, "sysctl", "procps")
	if _, err := exec.LookPath("ip"); err != nil {
		testrig.RequireCommand(t, "ip", "iproute2")
	}
}
