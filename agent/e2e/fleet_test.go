package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/internal/testrig"
)

func TestMain(m *testing.M) { testrig.Main(m) }

// fleet is a set of agent processes, one netns per site, on one bridge.
type fleet struct {
	t      *testing.T
	bin    string
	dir    string
	hub    *testrig.Netns
	voters []string
	seeds  []string
	key    string
	next   int
	sites  map[string]*proc
	// first remembers each site's first observed allocation (renumbering check).
	first map[string]site.Allocation
}

// proc is one site: its namespace, address, files and current process.
type proc struct {
	name     string
	ns       *testrig.Netns
	ip       string
	dir      string
	sock     string
	stateDir string
	cmd      *exec.Cmd
	exited   chan struct{}
	isolated bool // link down
	blocked  []string
}

func newFleet(t *testing.T, voters []string) *fleet {
	t.Helper()
	testrig.RequireRoot(t)
	testrig.RequireCommand(t, "nft", "nftables")
	dir, err := os.MkdirTemp("", "tfse")
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(rand.N(256))
	}
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fleet{
		t: t, bin: testrig.TfsiteBinary(t), dir: dir, voters: voters, key: keyFile,
		sites: map[string]*proc{}, first: map[string]site.Allocation{},
	}
	f.hub = testrig.NewNetns(t, "hub")
	f.hub.Run("ip", "link", "add", "br0", "type", "bridge")
	f.hub.Run("ip", "link", "set", "br0", "up")
	t.Cleanup(func() {
		for _, p := range f.sites {
			p.kill()
		}
		if t.Failed() {
			f.dumpLogs()
		}
		os.RemoveAll(dir)
	})
	return f
}

// addSite creates the site's namespace and files; start runs it.
func (f *fleet) addSite(name string) *proc {
	f.t.Helper()
	f.next++
	i := f.next
	p := &proc{name: name, ip: fmt.Sprintf("10.250.%d.%d", i/250, i%250+1), dir: filepath.Join(f.dir, name)}
	p.sock = filepath.Join(p.dir, "api.sock")
	p.stateDir = filepath.Join(p.dir, "state")
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	p.ns = testrig.NewNetns(f.t, fmt.Sprintf("s%d", i))
	hubIf := fmt.Sprintf("p%d", i)
	testrig.Veth(f.t, p.ns, "eth0", f.hub, hubIf)
	f.hub.Run("ip", "link", "set", hubIf, "master", "br0")
	p.ns.Run("ip", "addr", "add", p.ip+"/16", "dev", "eth0")
	if len(f.seeds) < 3 {
		f.seeds = append(f.seeds, p.ip)
	}
	// Common settings in the config file; the site's own name and address
	// on a kernel command line file, which takes precedence.
	conf := fmt.Sprintf(`site: placeholder
voters: [%s]
gossip:
  seeds: [%s]
  keyFile: %s
  profile: local
  rejoinInterval: 1s
allocator:
  retryInterval: 500ms
stateDir: %s
apiSocket: %s
metricsAddress: ""
underlay:
  disabled: true
`, strings.Join(f.voters, ", "), strings.Join(f.seeds, ", "), f.key, p.stateDir, p.sock)
	write(f.t, filepath.Join(p.dir, "config.yaml"), conf)
	write(f.t, filepath.Join(p.dir, "cmdline"), fmt.Sprintf("console=ttyS0 tfsite.site=%s tfsite.bind=%s quiet\n", name, p.ip))
	f.sites[name] = p
	return p
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs the site's agent process (again, after a kill).
func (f *fleet) start(p *proc) {
	f.t.Helper()
	logf, err := os.OpenFile(filepath.Join(p.dir, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := p.ns.Command(f.bin, "agent", "--config", filepath.Join(p.dir, "config.yaml"),
		"--cmdline", filepath.Join(p.dir, "cmdline"), "--nocloud", "off", "--platform", "none")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("starting %s: %v", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}(p.exited)
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

func (p *proc) running() bool { return p.cmd != nil }

// status runs `tfsite status --json` against the site's socket.
func (f *fleet) status(p *proc) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, f.bin, "status", "--json", "--socket", p.sock)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return api.Status{}, fmt.Errorf("tfsite status %s: %v: %s", p.name, err, strings.TrimSpace(stderr.String()))
	}
	var st api.Status
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		return api.Status{}, fmt.Errorf("tfsite status %s: %v", p.name, err)
	}
	return st, nil
}

// running returns the running sites, sorted by name.
func (f *fleet) running() []*proc {
	var out []*proc
	for _, p := range f.sites {
		if p.running() {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// waitConverged waits until every running site holds an allocation and sees
// every other running site alive with its allocation.
func (f *fleet) waitConverged(timeout time.Duration) map[string]api.Status {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for {
		all, err := f.converged()
		if err == nil {
			return all
		}
		why = err.Error()
		if time.Now().After(deadline) {
			f.goroutineDumps()
			f.t.Fatalf("fleet did not converge within %s: %s", timeout, why)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (f *fleet) converged() (map[string]api.Status, error) {
	procs := f.running()
	all := map[string]api.Status{}
	for _, p := range procs {
		st, err := f.status(p)
		if err != nil {
			return nil, err
		}
		if st.Allocation == nil {
			return nil, fmt.Errorf("%s: no allocation (phase %s, %s)", p.name, st.Phase, st.LastError)
		}
		var missing []string
		for _, q := range procs {
			if q == p {
				continue
			}
			i := slices.IndexFunc(st.Peers, func(peer api.Peer) bool { return peer.Site == q.name })
			switch {
			case i < 0:
				missing = append(missing, q.name+" (unknown)")
			case st.Peers[i].State != api.StateAlive || st.Peers[i].Allocation == nil:
				missing = append(missing, fmt.Sprintf("%s (%s, allocation %v)", q.name, st.Peers[i].State, st.Peers[i].Allocation != nil))
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%s does not see alive with an allocation: %s", p.name, strings.Join(missing, ", "))
		}
		all[p.name] = st
	}
	return all, nil
}

// checkSafety asserts the invariants over every site's durable record and
// every given status: no duplicate ASN, no overlapping prefix, status equal
// to the record, what peers see equal to the record, and no site renumbered
// since its first allocation.
func (f *fleet) checkSafety(statuses map[string]api.Status) {
	f.t.Helper()
	records := map[string]site.Allocation{}
	var list []site.Allocation
	for name, p := range f.sites {
		a, ok, err := alloc.ReadRecord(filepath.Join(p.stateDir, "alloc"))
		if err != nil {
			f.t.Fatalf("%s: durable record: %v", name, err)
		}
		if !ok {
			continue
		}
		if a.Site != name {
			f.t.Fatalf("%s: durable record names site %q", name, a.Site)
		}
		records[name] = a
		list = append(list, a)
		if first, seen := f.first[name]; seen && first != a {
			f.t.Fatalf("%s renumbered: %v, now %v", name, first, a)
		} else if !seen {
			f.first[name] = a
		}
	}
	if err := site.CheckDisjoint(list); err != nil {
		f.t.Fatalf("durable records collide:\n%v", err)
	}
	for name, st := range statuses {
		rec, ok := records[name]
		if st.Allocation != nil {
			if !ok || !sameAlloc(rec, st.Allocation) {
				f.t.Fatalf("%s: status allocation %+v differs from its durable record %v", name, *st.Allocation, rec)
			}
		}
		for _, peer := range st.Peers {
			if peer.Allocation == nil {
				continue
			}
			if r, ok := records[peer.Site]; ok && !sameAlloc(r, peer.Allocation) {
				f.t.Fatalf("%s sees %s holding %+v, but its durable record is %v", name, peer.Site, *peer.Allocation, r)
			}
		}
	}
}

func sameAlloc(a site.Allocation, b *api.Allocation) bool {
	return a.ASN == b.ASN && a.Pod == b.Pod && a.Service == b.Service && a.Fabric == b.Fabric
}

// isolate takes the site's link down (a crash of its network).
func (f *fleet) isolate(p *proc) {
	p.ns.Run("ip", "link", "set", "eth0", "down")
	p.isolated = true
}

// block drops all traffic between p and the given addresses with nftables.
func (f *fleet) block(p *proc, ips []string) {
	if len(ips) == 0 {
		return
	}
	set := "{ " + strings.Join(ips, ", ") + " }"
	rules := fmt.Sprintf(`table inet chaos {
  chain in { type filter hook input priority 0; ip saddr %s drop; }
  chain out { type filter hook output priority 0; ip daddr %s drop; }
}
`, set, set)
	cmd := p.ns.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("nft in %s: %v: %s", p.name, err, out)
	}
	p.blocked = ips
}

// heal undoes isolate and block.
func (f *fleet) heal(p *proc) {
	if p.isolated {
		p.ns.Run("ip", "link", "set", "eth0", "up")
		p.isolated = false
	}
	if p.blocked != nil {
		p.ns.Run("nft", "delete", "table", "inet", "chaos")
		p.blocked = nil
	}
}

func (f *fleet) dumpLogs() {
	names := make([]string, 0, len(f.sites))
	for n := range f.sites {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b, _ := os.ReadFile(filepath.Join(f.sites[n].dir, "agent.log"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		f.t.Logf("--- %s agent.log (last %d lines)\n%s", n, len(lines), strings.Join(lines, "\n"))
	}
}

// goroutineDumps makes every running agent that does not answer its API
// dump its goroutines (SIGQUIT) and logs the tfsite frames, to show where
// it is stuck.
func (f *fleet) goroutineDumps() {
	for _, p := range f.running() {
		if _, err := f.status(p); err == nil {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
		p.kill()
		b, _ := os.ReadFile(filepath.Join(p.dir, "agent.log"))
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "goroutine ") || strings.Contains(l, "tfsite/agent") {
				keep = append(keep, l)
			}
		}
		if len(keep) > 120 {
			keep = keep[:120]
		}
		f.t.Logf("--- %s did not answer; goroutines (tfsite frames):\n%s", p.name, strings.Join(keep, "\n"))
	}
}
