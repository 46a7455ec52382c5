package testrig

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// The lockout lab: TF's vrouter taking over a host's NIC with the one-line
// install's wrong VROUTER_GATEWAY (the master's address). The host's eth0 and
// a "master" node share a segment bridged in the gateway's namespace; the
// operator sits behind the gateway.
//
//	operator 10.9.0.2 ── gw 10.9.0.1 | br0 10.0.0.1 ── host eth0 10.0.0.10
//	                                               └── master 10.0.0.20 (no forwarding)
const (
	LockoutHost     = "10.0.0.10"
	LockoutGateway  = "10.0.0.1"
	LockoutMaster   = "10.0.0.20"
	LockoutOperator = "10.9.0.2"
	// LockoutHostTCPPort is the host's "sshd"; LockoutOperatorTCPPort a
	// service on the operator side the host can probe (an API server, a voter).
	LockoutHostTCPPort     = 2222
	LockoutOperatorTCPPort = 6443
)

// LockoutLab is the lab's four namespaces.
type LockoutLab struct {
	Host, Gateway, Master, Operator *Netns
}

// NewLockoutLab builds the lab and checks the operator reaches the host.
func NewLockoutLab(t testing.TB) *LockoutLab {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "ping", "iputils-ping")
	RequireCommand(t, "sysctl", "procps")
	RequireCommand(t, "ip", "iproute2")
	l := &LockoutLab{Host: NewNetns(t, "host"), Gateway: NewNetns(t, "gw"), Master: NewNetns(t, "mst"), Operator: NewNetns(t, "op")}
	l.Gateway.Run("ip", "link", "add", "br0", "type", "bridge")
	l.Gateway.Run("ip", "link", "set", "br0", "up")
	Veth(t, l.Host, "eth0", l.Gateway, "h0")
	Veth(t, l.Master, "eth0", l.Gateway, "m0")
	Veth(t, l.Operator, "eth0", l.Gateway, "eth1")
	l.Gateway.Run("ip", "link", "set", "h0", "master", "br0")
	l.Gateway.Run("ip", "link", "set", "m0", "master", "br0")
	l.Gateway.Run("ip", "addr", "add", LockoutGateway+"/24", "dev", "br0")
	l.Gateway.Run("ip", "addr", "add", "10.9.0.1/24", "dev", "eth1")
	l.Gateway.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.Host.Run("ip", "addr", "add", LockoutHost+"/24", "dev", "eth0")
	l.Host.Run("ip", "route", "add", "default", "via", LockoutGateway)
	l.Master.Run("ip", "addr", "add", LockoutMaster+"/24", "dev", "eth0")
	l.Master.Run("ip", "route", "add", "default", "via", LockoutGateway)
	l.Operator.Run("ip", "addr", "add", LockoutOperator+"/24", "dev", "eth0")
	l.Operator.Run("ip", "route", "add", "default", "via", "10.9.0.1")
	ListenIn(t, l.Host, LockoutHostTCPPort)
	ListenIn(t, l.Operator, LockoutOperatorTCPPort)
	if err := l.OperatorReaches(time.Second); err != nil {
		t.Fatalf("lockout lab broken before any change: %v", err)
	}
	return l
}

// ListenIn accepts (and closes) TCP connections on port inside ns until cleanup:
// a stand-in for a service (sshd) that an operator must be able to reach.
func ListenIn(t testing.TB, ns *Netns, port int) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// OperatorReaches reports whether the operator gets an echo reply and a TCP
// connection from the host.
func (l *LockoutLab) OperatorReaches(timeout time.Duration) error {
	w := fmt.Sprintf("%.1f", max(timeout.Seconds(), 0.2))
	if out, err := l.Operator.Command("ping", "-n", "-c1", "-W", w, LockoutHost).CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("ping %s from the operator: %v: %s", LockoutHost, err, lines[len(lines)-1])
	}
	return l.Operator.Do(func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", LockoutHost, LockoutHostTCPPort), timeout)
		if err != nil {
			return fmt.Errorf("tcp from the operator: %w", err)
		}
		return c.Close()
	})
}

// Takeover does to the host what TF's vrouter agent did with
// VROUTER_GATEWAY = the master's address: a new link vhost0 takes eth0 and
// its address, the default route points at the master. The operator is
// locked out afterwards.
func (l *LockoutLab) Takeover() error { return l.takeover(LockoutMaster) }

// GoodTakeover is the same takeover done right: vhost0 takes the NIC and
// the default route keeps the real gateway (VROUTER_GATEWAY = the gateway
// DHCP gave), so the host stays reachable.
func (l *LockoutLab) GoodTakeover() error { return l.takeover(LockoutGateway) }

func (l *LockoutLab) takeover(gateway string) error {
	for _, argv := range [][]string{
		{"ip", "link", "add", "vhost0", "type", "bridge"},
		{"ip", "link", "set", "vhost0", "up"},
		{"ip", "link", "set", "eth0", "master", "vhost0"},
		{"ip", "addr", "del", LockoutHost + "/24", "dev", "eth0"},
		{"ip", "addr", "add", LockoutHost + "/24", "dev", "vhost0"},
		{"ip", "route", "replace", "default", "via", gateway, "dev", "vhost0"},
	} {
		if out, err := l.Host.Command(argv...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
