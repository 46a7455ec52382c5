package image

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

// The shared network of the two-VM test: a bridge in a network namespace, dnsmasq on it, one tap per
// VM. dnsmasq reserves each VM's address by MAC, so each VM can name the other as its gossip seed on
// the kernel command line before either has booted.
const (
	twoVMBridgeAddr = "10.77.0.1"
	twoVMPrefixLen  = 24
)

type twoVMSite struct {
	name, mac, addr, tap string
}

var twoVMSites = []twoVMSite{
	{name: "site-a", mac: "52:54:00:77:00:0a", addr: "10.77.0.10", tap: "tap-a"},
	{name: "site-b", mac: "52:54:00:77:00:0b", addr: "10.77.0.11", tap: "tap-b"},
}

// rePeers matches the peers block of the recovery console's Status ("peers N", then one indented
// "site state" line per peer) once the line after it has begun, so that no peer line is cut off.
// Lines end in "\r\r\n" on the serial line (the console writes "\r\n", the tty adds a "\r").
var rePeers = regexp.MustCompile(`peers +(\d+)\r*\n((?: +\S+ +\S+\r*\n)*)\S`)

// reReadyAlloc parses the line agent-ready prints after READY=1 (site.Allocation's String).
var reReadyAlloc = regexp.MustCompile(`tfsite-agent: ready \(READY=1\): (\S+) asn=(\d+) pod=(\S+) service=(\S+) fabric=(\S+)[\r\n]`)

// readyAlloc is what one site reported when it became ready.
type readyAlloc struct {
	site     string
	asn      uint64
	prefixes map[string]netip.Prefix // pod, service, fabric
}

func parseReadyAlloc(m []string) (readyAlloc, error) {
	asn, err := strconv.ParseUint(m[2], 10, 32)
	if err != nil {
		return readyAlloc{}, fmt.Errorf("asn %q: %w", m[2], err)
	}
	a := readyAlloc{site: m[1], asn: asn, prefixes: map[string]netip.Prefix{}}
	for i, kind := range []string{"pod", "service", "fabric"} {
		p, err := netip.ParsePrefix(m[3+i])
		if err != nil {
			return readyAlloc{}, fmt.Errorf("%s prefix %q: %w", kind, m[3+i], err)
		}
		a.prefixes[kind] = p
	}
	return a, nil
}

// checkDistinct reports ASNs used twice and prefixes that overlap, across all sites and kinds.
func checkDistinct(allocs []readyAlloc) []string {
	var problems []string
	type named struct {
		what string
		p    netip.Prefix
	}
	var all []named
	asns := map[uint64]string{}
	for _, a := range allocs {
		if other, dup := asns[a.asn]; dup {
			problems = append(problems, fmt.Sprintf("ASN %d allocated to both %s and %s", a.asn, other, a.site))
		}
		asns[a.asn] = a.site
		for _, kind := range []string{"pod", "service", "fabric"} {
			all = append(all, named{a.site + " " + kind, a.prefixes[kind]})
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[i].p.Overlaps(all[j].p) {
				problems = append(problems, fmt.Sprintf("%s %s overlaps %s %s", all[i].what, all[i].p, all[j].what, all[j].p))
			}
		}
	}
	return problems
}

// peerAlive reports whether the peer lines of the console's Status (rePeers' second group) list
// peer as alive.
func peerAlive(lines, peer string) bool {
	return regexp.MustCompile(`(?m)^ +` + regexp.QuoteMeta(peer) + ` +alive\r*$`).MatchString(lines)
}

func TestPeersBlock(t *testing.T) {
	out := "underlay ens2 10.77.0.10/24 via 10.77.0.1\r\r\npeers    2\r\r\n  site-b               alive\r\r\n  site-c               suspect\r\r\nlast network event:\r\r\n"
	m := rePeers.FindStringSubmatch(out)
	if m == nil || m[1] != "2" {
		t.Fatalf("peers block not found in %q: %q", out, m)
	}
	if !peerAlive(m[2], "site-b") || peerAlive(m[2], "site-c") || peerAlive(m[2], "site") {
		t.Errorf("peerAlive on %q: site-b alive %v, site-c (suspect) %v, site (no such peer) %v",
			m[2], peerAlive(m[2], "site-b"), peerAlive(m[2], "site-c"), peerAlive(m[2], "site"))
	}
	if rePeers.MatchString("peers    1\r\r\n  site-b               alive\r\r\n") {
		t.Error("a peers block matched before the line after it began (a peer line may still be cut off)")
	}
}

func TestCheckDistinct(t *testing.T) {
	m := func(s string) []string { return reReadyAlloc.FindStringSubmatch(s) }
	a, err := parseReadyAlloc(m("tfsite-agent: ready (READY=1): site-a asn=64512 pod=10.32.0.0/21 service=10.96.0.0/22 fabric=10.64.0.0/22\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseReadyAlloc(m("tfsite-agent: ready (READY=1): site-b asn=64513 pod=10.32.8.0/21 service=10.96.4.0/22 fabric=10.64.4.0/22\r"))
	if err != nil {
		t.Fatal(err)
	}
	if p := checkDistinct([]readyAlloc{a, b}); len(p) != 0 {
		t.Errorf("distinct allocations reported as clashing: %v", p)
	}
	c, err := parseReadyAlloc(m("tfsite-agent: ready (READY=1): site-c asn=64512 pod=10.32.4.0/22 service=10.96.8.0/22 fabric=10.64.8.0/22\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := checkDistinct([]readyAlloc{a, b, c}); len(p) != 2 {
		t.Errorf("want the duplicate ASN and the overlapping pod prefix reported, got %q", p)
	}
	if _, err := parseReadyAlloc([]string{"", "x", "64512", "10.32.0.0/33", "10.96.0.0/22", "10.64.0.0/22"}); err == nil {
		t.Error("a bad prefix parsed")
	}
}

// TestTwoVMJoin boots two images (direct kernel boot, TCG) on one network served by dnsmasq, each
// configured only through the kernel command line (tfsite.site=, tfsite.voters=site-a, tfsite.seeds=
// the other VM's reserved address, a shared tfsite.key=), and asserts from their serial consoles that
// both discover the gateway, both report ready with distinct ASNs and non-overlapping prefixes
// (site-b gets its allocation from site-a, the voter, so it must have joined it), and that each
// recovery console's status lists the other site as a peer.
//
// Run with `make test-two-vm` (builds the image first), or TFSITE_TWO_VM_TEST=1 go test -run TestTwoVMJoin ./image/ as root.
func TestTwoVMJoin(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(root, "mkosi.output", "tfsite.raw")
	if os.Getenv("TFSITE_TWO_VM_TEST") != "1" {
		t.Skip("two-VM test: set TFSITE_TWO_VM_TEST=1 after make image (as root), or run make test-two-vm")
	}
	if _, err := os.Stat(raw); err != nil {
		t.Fatalf("TFSITE_TWO_VM_TEST=1 but %s is missing: run make image (or make test-two-vm)", raw)
	}
	testrig.RequireRoot(t)
	testrig.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	testrig.RequireCommand(t, "python3", "python3-pefile") // hack/image-cmdline.sh
	started := time.Now()

	ns := testrig.NewNetns(t, "2vm")
	ns.Run("ip", "link", "add", "br0", "type", "bridge")
	ns.Run("ip", "addr", "add", fmt.Sprintf("%s/%d", twoVMBridgeAddr, twoVMPrefixLen), "dev", "br0")
	ns.Run("ip", "link", "set", "br0", "up")
	dnsArgs := []string{"--dhcp-authoritative"}
	for _, s := range twoVMSites {
		ns.Run("ip", "tuntap", "add", "dev", s.tap, "mode", "tap")
		ns.Run("ip", "link", "set", s.tap, "master", "br0", "up")
		dnsArgs = append(dnsArgs, "--dhcp-host="+s.mac+","+s.addr)
	}
	testrig.StartDnsmasq(t, ns, testrig.DnsmasqConfig{
		Interface: "br0",
		Range:     "10.77.0.100,10.77.0.150,255.255.255.0,1h",
		Options:   []string{"3," + twoVMBridgeAddr},
		Args:      dnsArgs,
	})

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keyArg := base64.StdEncoding.EncodeToString(key)

	timeout := envDuration(t, "TFSITE_BOOT_TIMEOUT", 10*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	vms := make([]*vm, len(twoVMSites))
	for i, s := range twoVMSites {
		peer := twoVMSites[1-i]
		cmd := ns.Command(filepath.Join(root, "hack", "boot.sh"), "--kernel")
		cmd.Dir = root
		cmd.Env = append(os.Environ(),
			"QEMU_ACCEL=tcg",
			"QEMU_SMP="+envOr("TFSITE_TWO_VM_SMP", "1"),
			"QEMU_MEM="+envOr("TFSITE_TWO_VM_MEM", "1024"),
			"QEMU_NETDEV=tap,id=n0,ifname="+s.tap+",script=no,downscript=no",
			"QEMU_MAC="+s.mac,
			fmt.Sprintf("TFSITE_CMDLINE=tfsite.site=%s tfsite.voters=%s tfsite.seeds=%s tfsite.key=%s",
				s.name, twoVMSites[0].name, peer.addr, keyArg),
		)
		vms[i] = startVM(t, ctx, cmd, filepath.Join(root, "mkosi.output", "two-vm-"+s.name+".log"))
	}

	// Both consoles are read at once: each VM's waits run in their own goroutine.
	allocs := make([]readyAlloc, len(vms))
	errs := make([]error, len(vms))
	var wg sync.WaitGroup
	for i, v := range vms {
		wg.Go(func() { allocs[i], errs[i] = waitReady(v, twoVMSites[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			vms[i].fail("%s: %v", twoVMSites[i].name, err)
		}
	}
	if p := checkDistinct(allocs); len(p) != 0 {
		t.Fatalf("the two sites' allocations clash: %v", p)
	}
	for _, a := range allocs {
		t.Logf("%s: asn=%d pod=%s service=%s fabric=%s", a.site, a.asn, a.prefixes["pod"], a.prefixes["service"], a.prefixes["fabric"])
	}

	// Each recovery console's Status lists the other site.
	for i, v := range vms {
		if err := waitPeer(v, twoVMSites[1-i].name); err != nil {
			v.fail("%s: %v", twoVMSites[i].name, err)
		}
	}
	t.Logf("TWO-VM both ready and joined in %s", time.Since(started).Round(100*time.Millisecond))
}

// waitReady waits for site s's gateway line and its ready line, and returns its allocation.
func waitReady(v *vm, s twoVMSite) (readyAlloc, error) {
	reGw := regexp.MustCompile(`tfsite-discover: gateway=(\S+) source=\S+ interface=\S+ by=(\S+)[\r\n]`) // the line end: output arrives in chunks
	m, _, err := v.con.wait(v.ctx, reGw, 0)
	if err != nil {
		return readyAlloc{}, fmt.Errorf("no discovery report: %w", err)
	}
	if m[1] != twoVMBridgeAddr || m[2] != "tfsite-discover" {
		return readyAlloc{}, fmt.Errorf("discovered gateway %s by %s, want %s by tfsite-discover", m[1], m[2], twoVMBridgeAddr)
	}
	either := regexp.MustCompile(reReadyAlloc.String() + "|" + reAgentFailed.String())
	m, _, err = v.con.wait(v.ctx, either, 0)
	if err != nil {
		return readyAlloc{}, fmt.Errorf("agent never reported ready: %w", err)
	}
	if m[1] == "" {
		return readyAlloc{}, fmt.Errorf("agent failed: %q", m[0])
	}
	a, err := parseReadyAlloc(m)
	if err != nil {
		return readyAlloc{}, fmt.Errorf("ready line %q: %w", m[0], err)
	}
	if a.site != s.name {
		return readyAlloc{}, fmt.Errorf("ready line names site %s, want %s", a.site, s.name)
	}
	v.t.Logf("%s ready at %s: %s", s.name, v.con.since(), m[0][:len(m[0])-1])
	return a, nil
}

// waitPeer opens the recovery console's Status entry and waits for peer among its peers.
func waitPeer(v *vm, peer string) error {
	err := v.consoleStatusUntil(rePeers, func(m []string) bool { return peerAlive(m[2], peer) })
	if err != nil {
		return fmt.Errorf("%s never listed as an alive peer: %w", peer, err)
	}
	return nil
}
