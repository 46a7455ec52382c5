package netguard

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

// lab is testrig's lockout lab (host eth0 and a "master" on one segment
// bridged in the gateway's namespace, the operator behind the gateway) with
// short names for this package's tests.
//
//	operator 10.9.0.2 ── gw 10.9.0.1 | br0 10.0.0.1 ── host eth0 10.0.0.10
//	                                               └── master 10.0.0.20 (no forwarding)
type lab struct {
	*testrig.LockoutLab
	host, gw, master, operator *testrig.Netns
}

const (
	hostAddr     = testrig.LockoutHost
	gwAddr       = testrig.LockoutGateway
	masterAddr   = testrig.LockoutMaster
	operatorAddr = testrig.LockoutOperator
	hostTCPPort  = testrig.LockoutHostTCPPort
)

func newLab(t testing.TB) *lab {
	t.Helper()
	l := testrig.NewLockoutLab(t)
	return &lab{LockoutLab: l, host: l.Host, gw: l.Gateway, master: l.Master, operator: l.Operator}
}

// operatorReaches reports whether the operator gets both an echo reply and
// a TCP connection from the host.
func (l *lab) operatorReaches(timeout time.Duration) error { return l.OperatorReaches(timeout) }

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
