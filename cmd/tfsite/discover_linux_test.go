package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/agent/underlay"
	"github.com/tfsite/tfsite/internal/testrig"
)

func TestDiscoverHelpDocumentsExitCodes(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"discover", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for code := 0; code <= 7; code++ {
		if !strings.Contains(out.String(), fmt.Sprintf("\n  %d  ", code)) {
			t.Errorf("--help does not document exit code %d", code)
		}
	}
	for _, flag := range []string{"--iface", "--timeout", "--apply", "--json", "--skip", "Examples:"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("--help lacks %s", flag)
		}
	}
}

func TestDiscoverUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"discover", "--timeout", "soon"},
		{"discover", "eth0"},
		{"discover", "--timeout", "-1s"},
		{"discover", "--retries", "99"},
		{"discover", "--iface", ""},
		{"discover", "--request-ip", "not-an-ip"},
	} {
		root := newRootCmd()
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(args)
		err := root.Execute()
		var ee *exitError
		if !errors.As(err, &ee) || ee.Code != exitDiscoverUsage {
			t.Errorf("%v: err = %v, want exit code %d", args, err, exitDiscoverUsage)
		}
	}
}

func TestDiscoverExitCodeMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("eth0: %w", underlay.ErrNoInterface), 3},
		{fmt.Errorf("eth0: %w", underlay.ErrLinkDown), 3},
		{fmt.Errorf("eth0: %w", underlay.ErrNoResponse), 4},
		{fmt.Errorf("eth0: %w", underlay.ErrNAK), 5},
		{fmt.Errorf("eth0: %w", underlay.ErrNoGateway), 6},
		{fmt.Errorf("eth0: %w", underlay.ErrGatewayIsSelf), 6},
		{fmt.Errorf("eth0: %w", underlay.ErrGatewayOffLink), 6},
		{fmt.Errorf("eth0: %w", underlay.ErrBadLease), 6},
		{fmt.Errorf("eth0: %w", underlay.ErrApply), 7},
		{errors.Join(underlay.ErrNoResponse, underlay.ErrNoGateway), 6},
		{errors.New("boom"), 1},
	} {
		if got := discoverExitCode(tc.err); got != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, got, tc.code)
		}
	}
}

// TestDiscoverBinary builds tfsite and runs `tfsite discover` inside a
// namespace against a real dnsmasq: JSON output, then each documented
// failure's exit code and one-line stderr.
func TestDiscoverBinary(t *testing.T) {
	testrig.RequireRoot(t)
	bin := testrig.TfsiteBinary(t)
	cli := testrig.NewNetns(t, "bcli")
	srv := testrig.NewNetns(t, "bsrv")
	bad := testrig.NewNetns(t, "bbad")
	dead := testrig.NewNetns(t, "bdead")
	testrig.Veth(t, cli, "eth0", srv, "eth0")
	testrig.Veth(t, cli, "eth1", bad, "eth0")
	testrig.Veth(t, cli, "eth2", dead, "eth0")
	srv.Run("ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
	bad.Run("ip", "addr", "add", "198.51.100.1/24", "dev", "eth0")
	testrig.StartDnsmasq(t, srv, testrig.DnsmasqConfig{Interface: "eth0", Range: "192.0.2.100,192.0.2.150,255.255.255.0,1h",
		Options: []string{"121,0.0.0.0/0,192.0.2.1", "3,192.0.2.254"}, Args: []string{"--dhcp-authoritative"}})
	testrig.StartDnsmasq(t, bad, testrig.DnsmasqConfig{Interface: "eth0", Range: "198.51.100.100,198.51.100.150,255.255.255.0,1h",
		Options: []string{"3,198.51.100.1", "121,203.0.113.0/24,198.51.100.1"}})

	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := cli.Command(append([]string{bin, "discover"}, args...)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			code = xe.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}

	stdout, stderr, code := run("--iface", "eth0", "--json", "--timeout", "3s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
		t.Fatalf("want one JSON object on one line, got %q (%v)", stdout, err)
	}
	for _, k := range []string{"interface", "mac", "address", "gateway", "gateway_source", "routes", "dns", "mtu",
		"lease_seconds", "server", "kernel_default_route", "agrees"} {
		if _, ok := res[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, stdout)
		}
	}
	if res["gateway"] != "192.0.2.1" || res["gateway_source"] != "dhcp-option-121" || res["interface"] != "eth0" {
		t.Fatalf("JSON %s", stdout)
	}

	// Human output; --skip keeps auto off the broken eth1.
	stdout, stderr, code = run("--iface", "auto", "--skip", "eth1,eth2", "--timeout", "3s")
	if code != 0 || !strings.Contains(stdout, "gateway         192.0.2.1 (from dhcp-option-121)") {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}

	for _, tc := range []struct {
		args []string
		code int
		has  string
	}{
		{[]string{"--iface", "nosuch0"}, 3, "nosuch0"},
		{[]string{"--iface", "eth2", "--timeout", "500ms"}, 4, "eth2"},
		{[]string{"--iface", "eth0", "--request-ip", "203.0.113.7", "--timeout", "2s"}, 5, "eth0"},
		{[]string{"--iface", "eth1", "--timeout", "2s"}, 6, "198.51.100.1 is ignored"},
		{[]string{"--iface", "eth0", "--bogus"}, 2, "--bogus"},
	} {
		stdout, stderr, code := run(tc.args...)
		if code != tc.code || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.has) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q (want one line with %q)", tc.args, code, tc.code, stdout, stderr, tc.has)
		}
	}
}
