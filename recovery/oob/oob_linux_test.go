package oob

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

// TestManagementReachableWithUnderlayBroken: the host's main table points
// at a wrong gateway (TF took the NIC), yet the operator on the management
// network reaches the management address by ping and TCP — and does not
// without the management path, so the test can fail.
//
//	operator 192.168.200.2 ── mgmt router ── host eth1 192.168.100.10
//	                                         host eth0 10.0.0.10 ── gw 10.0.0.1
func TestManagementReachableWithUnderlayBroken(t *testing.T) {
	testrig.RequireRoot(t)
	testrig.RequireCommand(t, "ping", "iputils-ping")
	host, gw := testrig.NewNetns(t, "oobh"), testrig.NewNetns(t, "oobg")
	router, op := testrig.NewNetns(t, "oobr"), testrig.NewNetns(t, "oobo")
	testrig.Veth(t, host, "eth0", gw, "eth0")
	testrig.Veth(t, host, "eth1", router, "eth0")
	testrig.Veth(t, router, "eth1", op, "eth0")
	gw.Run("ip", "addr", "add", "10.0.0.1/24", "dev", "eth0")
	host.Run("ip", "addr", "add", "10.0.0.10/24", "dev", "eth0")
	host.Run("ip", "addr", "add", "192.168.100.10/24", "dev", "eth1")
	router.Run("ip", "addr", "add", "192.168.100.1/24", "dev", "eth0")
	router.Run("ip", "addr", "add", "192.168.200.1/24", "dev", "eth1")
	router.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	op.Run("ip", "addr", "add", "192.168.200.2/24", "dev", "eth0")
	op.Run("ip", "route", "add", "default", "via", "192.168.200.1")
	// The underlay is broken: the main table's default route points at a
	// gateway that is not there (the one-line install's VROUTER_GATEWAY).
	host.Run("ip", "route", "add", "default", "via", "10.0.0.99")

	testrig.ListenIn(t, host, 22)
	reach := func() error {
		if out, err := op.Command("ping", "-n", "-c1", "-W1", "192.168.100.10").CombinedOutput(); err != nil {
			return fmt.Errorf("ping: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return op.Do(func() error {
			c, err := net.DialTimeout("tcp", "192.168.100.10:22", time.Second)
			if err != nil {
				return fmt.Errorf("tcp: %w", err)
			}
			return c.Close()
		})
	}
	if err := reach(); err == nil {
		t.Fatal("operator reaches the host without the management path: the broken underlay breaks nothing, the test proves nothing")
	}

	dir := t.TempDir()
	cfg := Default()
	cfg.StateDir, cfg.Link = dir, "eth1"
	cfg.Address = netip.MustParsePrefix("192.168.100.10/24")
	cfg.Gateway = netip.MustParseAddr("192.168.100.1")
	var res *Reservation
	var hasVRF bool
	err := host.Do(func() (err error) {
		hasVRF = HasVRF()
		res, err = Apply(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil { // idempotent
			_, err = Apply(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{true: ModeVRF, false: ModeRule}[hasVRF]; res.Mode != want {
		t.Fatalf("mode %s, want %s (kernel VRF: %v)", res.Mode, want, hasVRF)
	}
	t.Logf("management path mode %s (%s)", res.Mode, res.Note)
	if res.Mode == ModeRule {
		if rules := host.Run("ip", "rule", "show"); strings.Count(rules, "from 192.168.100.10 lookup 200") != 1 {
			t.Fatalf("rules after two applies:\n%s", rules)
		}
	}
	if err := reach(); err != nil {
		t.Fatalf("management address unreachable with the underlay broken: %v", err)
	}
	// The main table stays broken: the management path did not "fix" it.
	if out := host.Run("ip", "route", "show", "default"); !strings.Contains(out, "10.0.0.99") {
		t.Fatalf("main default route changed: %s", out)
	}
	if ok, err := Reserved(filepath.Clean(dir), "eth1"); !ok || err != nil {
		t.Fatalf("Reserved(eth1) = %v %v", ok, err)
	}
}
