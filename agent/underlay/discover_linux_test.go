package underlay

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

// Scenario tests: the real client (Discover: netlink + AF_PACKET) runs
// inside a client namespace, against a real dnsmasq in a server namespace
// joined by veth. They need root (CI runs them; elsewhere they skip).

// link2 joins a fresh client namespace to a fresh server namespace (eth0 on
// both) and gives the server addr (CIDR).
func link2(t *testing.T, addr string) (cli, srv *testrig.Netns) {
	t.Helper()
	cli = testrig.NewNetns(t, "ucli")
	srv = testrig.NewNetns(t, "usrv")
	testrig.Veth(t, cli, "eth0", srv, "eth0")
	srv.Run("ip", "addr", "add", addr, "dev", "eth0")
	return cli, srv
}

func serve(t *testing.T, srv *testrig.Netns, rng string, opts []string, args ...string) *testrig.Dnsmasq {
	t.Helper()
	return testrig.StartDnsmasq(t, srv, testrig.DnsmasqConfig{Interface: "eth0", Range: rng, Options: opts, Args: args})
}

// discoverIn runs Discover inside ns.
func discoverIn(t *testing.T, ns *testrig.Netns, opts Options) (*Result, error) {
	t.Helper()
	var res *Result
	var err error
	if e := ns.Do(func() error {
		res, err = Discover(context.Background(), opts, testLog(t))
		return nil
	}); e != nil {
		t.Fatal(e)
	}
	return res, err
}

// kernelState is what --apply would change: addresses, routes, MTUs.
func kernelState(ns *testrig.Netns) string {
	return ns.Run("ip", "-4", "addr") + ns.Run("ip", "-4", "route", "show", "table", "all") + ns.Run("ip", "-o", "link")
}

func TestScenarioOption3Only(t *testing.T) {
	t.Parallel()
	cli, srv := link2(t, "192.0.2.1/24")
	serve(t, srv, "192.0.2.100,192.0.2.150,255.255.255.0,1h", []string{"6,192.0.2.53", "26,1400"})
	before := kernelState(cli)
	res, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^192\.0\.2\.1[0-5][0-9]/24$`).MatchString(res.Address) || res.Gateway != "192.0.2.1" ||
		res.GatewaySource != SourceOption3 || res.Server != "192.0.2.1" || res.MTU != 1400 || res.LeaseSeconds != 3600 ||
		len(res.DNS) != 1 || res.DNS[0] != "192.0.2.53" || res.KernelDefaultRoute != "" || res.Agrees {
		t.Fatalf("result %+v", res)
	}
	if after := kernelState(cli); after != before {
		t.Fatalf("without Apply the kernel state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestScenarioOption121WinsOverOption3(t *testing.T) {
	t.Parallel()
	cli, srv := link2(t, "192.0.2.1/24")
	serve(t, srv, "192.0.2.100,192.0.2.150,255.255.255.0,1h",
		[]string{"3,192.0.2.254", "121,198.51.100.0/24,192.0.2.2,0.0.0.0/0,192.0.2.1"})
	// The kernel already routes via what option 3 says: Discover must
	// report the disagreement, not follow the kernel.
	cli.Run("ip", "addr", "add", "192.0.2.99/24", "dev", "eth0")
	cli.Run("ip", "route", "add", "default", "via", "192.0.2.254")
	res, err := discoverIn(t, cli, Options{Iface: IfaceAuto, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Gateway != "192.0.2.1" || res.GatewaySource != SourceOption121 || res.KernelDefaultRoute != "192.0.2.254" || res.Agrees {
		t.Fatalf("result %+v, want 192.0.2.1 from option 121 disagreeing with the kernel's 192.0.2.254", res)
	}
	want := []Route{{"198.51.100.0/24", "192.0.2.2"}, {"0.0.0.0/0", "192.0.2.1"}}
	if len(res.Routes) != 2 || res.Routes[0] != want[0] || res.Routes[1] != want[1] {
		t.Fatalf("routes %v, want %v", res.Routes, want)
	}
}

func TestScenarioOption121WithoutDefault(t *testing.T) {
	t.Parallel()
	cli, srv := link2(t, "192.0.2.1/24")
	serve(t, srv, "192.0.2.100,192.0.2.150,255.255.255.0,1h", []string{"3,192.0.2.1", "121,198.51.100.0/24,192.0.2.2"})
	_, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: 5 * time.Second})
	if !errors.Is(err, ErrNoGateway) || !strings.Contains(err.Error(), "router 192.0.2.1 is ignored") || !strings.HasPrefix(err.Error(), "eth0: ") {
		t.Fatalf("err = %v, want ErrNoGateway naming eth0 and the ignored router 192.0.2.1", err)
	}
}

// TestScenarioSlash32Apply: a public-cloud style /32 lease reaches its
// gateway through an on-link classless route. Without Apply nothing
// changes; with Apply the kernel holds the address, the routes and the MTU,
// and the gateway answers pings.
func TestScenarioSlash32Apply(t *testing.T) {
	t.Parallel()
	cli, srv := link2(t, "10.0.0.1/24")
	serve(t, srv, "10.0.0.50,10.0.0.50,255.255.255.0,1h",
		[]string{"1,255.255.255.255", "121,10.0.0.1/32,0.0.0.0,0.0.0.0/0,10.0.0.1", "26,1400"})
	before := kernelState(cli)
	res, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{{"10.0.0.1/32", ""}, {"0.0.0.0/0", "10.0.0.1"}}
	if res.Address != "10.0.0.50/32" || res.Gateway != "10.0.0.1" || res.GatewaySource != SourceOption121 ||
		len(res.Routes) != 2 || res.Routes[0] != want[0] || res.Routes[1] != want[1] {
		t.Fatalf("result %+v", res)
	}
	if after := kernelState(cli); after != before {
		t.Fatalf("without Apply the kernel state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	_, err = discoverIn(t, cli, Options{Iface: "eth0", Timeout: 5 * time.Second, Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	if addr := cli.Run("ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(addr, "inet 10.0.0.50/32 ") {
		t.Fatalf("address after Apply: %s", addr)
	}
	routes := cli.Run("ip", "-4", "route", "show", "dev", "eth0")
	for _, r := range []string{"default via 10.0.0.1 proto dhcp", "10.0.0.1 proto dhcp scope link"} {
		if !strings.Contains(routes, r) {
			t.Fatalf("routes after Apply lack %q:\n%s", r, routes)
		}
	}
	if link := cli.Run("ip", "-o", "link", "show", "eth0"); !strings.Contains(link, "mtu 1400 ") {
		t.Fatalf("MTU after Apply: %s", link)
	}
	cli.Run("ping", "-c1", "-W2", "10.0.0.1")
	// The kernel now agrees with DHCP.
	res, err = discoverIn(t, cli, Options{Iface: "eth0", Timeout: 5 * time.Second})
	if err != nil || res.KernelDefaultRoute != "10.0.0.1" || !res.Agrees {
		t.Fatalf("after Apply: %+v %v, want agreement on 10.0.0.1", res, err)
	}
}

// TestScenarioTwoNICsOneAnswered: eth0 (sorted first) leads to a namespace
// without a server, eth1 to dnsmasq; auto picks eth1.
func TestScenarioTwoNICsOneAnswered(t *testing.T) {
	t.Parallel()
	cli := testrig.NewNetns(t, "ucli")
	dead := testrig.NewNetns(t, "udead")
	srv := testrig.NewNetns(t, "usrv")
	testrig.Veth(t, cli, "eth0", dead, "eth0")
	testrig.Veth(t, cli, "eth1", srv, "eth0")
	srv.Run("ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
	serve(t, srv, "192.0.2.100,192.0.2.150,255.255.255.0,1h", nil)
	start := time.Now()
	res, err := discoverIn(t, cli, Options{Iface: IfaceAuto, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface != "eth1" || res.Gateway != "192.0.2.1" {
		t.Fatalf("result %+v, want eth1 via 192.0.2.1", res)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("auto took %s with a 2s timeout", d)
	}
	// Skipping eth1 (say, it is the management link) leaves only eth0.
	if _, err := discoverIn(t, cli, Options{Iface: IfaceAuto, Timeout: 300 * time.Millisecond, Skip: []string{"eth1"}}); !errors.Is(err, ErrNoResponse) {
		t.Fatalf("eth1 skipped: err = %v, want ErrNoResponse on eth0", err)
	}
}

// TestScenarioSlowServerRetries: nftables in the server namespace drops the
// first two DHCP packets; the client's retransmissions get through.
func TestScenarioSlowServerRetries(t *testing.T) {
	t.Parallel()
	testrig.RequireCommand(t, "nft", "nftables")
	cli, srv := link2(t, "192.0.2.1/24")
	d := serve(t, srv, "192.0.2.100,192.0.2.150,255.255.255.0,1h", nil)
	srv.Run("nft", "add table inet slow")
	srv.Run("nft", "add chain inet slow in { type filter hook input priority 0 ; }")
	srv.Run("nft", "add rule inet slow in udp dport 67 limit rate 1/hour burst 2 packets counter drop")
	res, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: 10 * time.Second, Retries: 3})
	if err != nil {
		t.Fatalf("with the first 2 packets dropped: %v", err)
	}
	if res.Gateway != "192.0.2.1" {
		t.Fatalf("result %+v", res)
	}
	if rules := srv.Run("nft", "list", "table", "inet", "slow"); !strings.Contains(rules, "counter packets 2 ") {
		t.Fatalf("want exactly 2 dropped packets:\n%s", rules)
	}
	// dnsmasq saw the third transmission (a fourth only if a loaded machine delayed its reply).
	if n := strings.Count(d.Log(), "DHCPDISCOVER("); n < 1 {
		t.Fatalf("dnsmasq saw %d DISCOVERs, want the third transmission", n)
	}
}

func TestScenarioNoServerTimesOut(t *testing.T) {
	t.Parallel()
	cli, _ := link2(t, "192.0.2.1/24")
	timeout := time.Second
	start := time.Now()
	_, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: timeout})
	d := time.Since(start)
	if !errors.Is(err, ErrNoResponse) || !strings.HasPrefix(err.Error(), "eth0: ") {
		t.Fatalf("err = %v, want ErrNoResponse naming eth0", err)
	}
	if d > timeout+time.Second { // slack for a loaded machine only
		t.Fatalf("gave up after %s, want within the %s timeout", d, timeout)
	}
}

// TestScenarioNAK: an authoritative dnsmasq NAKs a rebooting client's
// request for an address from another network.
func TestScenarioNAK(t *testing.T) {
	t.Parallel()
	cli, srv := link2(t, "192.0.2.1/24")
	d := serve(t, srv, "192.0.2.100,192.0.2.150,255.255.255.0,1h", nil, "--dhcp-authoritative")
	_, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: 3 * time.Second, RequestIP: "203.0.113.7"})
	if !errors.Is(err, ErrNAK) || !strings.Contains(err.Error(), "192.0.2.1") {
		t.Fatalf("err = %v, want ErrNAK from server 192.0.2.1", err)
	}
	if !strings.Contains(d.Log(), "DHCPNAK") {
		t.Fatalf("dnsmasq did not NAK:\n%s", d.Log())
	}
	// Asking for an address of this network is ACKed by the same server.
	res, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: 3 * time.Second})
	if err != nil || res.Gateway != "192.0.2.1" {
		t.Fatalf("fresh DISCOVER: %+v %v", res, err)
	}
}

func TestScenarioInterfaceErrors(t *testing.T) {
	t.Parallel()
	cli, _ := link2(t, "192.0.2.1/24")
	cli.Run("ip", "link", "add", "eth9", "type", "veth", "peer", "name", "eth8") // both ends down
	if _, err := discoverIn(t, cli, Options{Iface: "eth9", Timeout: time.Second}); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("down link: err = %v, want ErrLinkDown", err)
	}
	if _, err := discoverIn(t, cli, Options{Iface: "nosuch0", Timeout: time.Second}); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("missing link: err = %v, want ErrNoInterface", err)
	}
}

// TestScenarioApplyFails: a classless route via a gateway the kernel cannot
// reach makes Apply fail with ErrApply naming the route; the rest is applied.
func TestScenarioApplyFails(t *testing.T) {
	t.Parallel()
	cli, srv := link2(t, "192.0.2.1/24")
	serve(t, srv, "192.0.2.100,192.0.2.150,255.255.255.0,1h", []string{"121,0.0.0.0/0,192.0.2.1,198.51.100.0/24,203.0.113.1"})
	res, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: 5 * time.Second, Apply: true})
	if !errors.Is(err, ErrApply) || !strings.Contains(err.Error(), "198.51.100.0/24 via 203.0.113.1") || !strings.HasPrefix(err.Error(), "eth0: ") {
		t.Fatalf("err = %v, want ErrApply naming eth0 and the unreachable route", err)
	}
	if res == nil || res.Gateway != "192.0.2.1" {
		t.Fatalf("result %+v, want the lease reported with the error", res)
	}
	if routes := cli.Run("ip", "-4", "route", "show", "dev", "eth0"); !strings.Contains(routes, "default via 192.0.2.1 proto dhcp") {
		t.Fatalf("the default route was not applied:\n%s", routes)
	}
}
