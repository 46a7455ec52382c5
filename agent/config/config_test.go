package config

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig(t *testing.T) Config {
	t.Helper()
	c := Default()
	c.Site = "site-a"
	c.Voters = []string{"site-a"}
	c.Gossip.Key = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	return c
}

// TestValidateRefusesNoKeyUnlessInsecure: without a gossip key the agent
// would run an allocator anyone can use; only an explicit lab setting
// allows it.
func TestValidateRefusesNoKeyUnlessInsecure(t *testing.T) {
	c := validConfig(t)
	c.Gossip.Key = ""
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "gossip.key: none configured") || !strings.Contains(err.Error(), "insecure: true") {
		t.Fatalf("Validate() without a key = %v, want a gossip.key error naming the fix and insecure: true", err)
	}
	c.Insecure = true
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() with insecure: true = %v", err)
	}
	c, err = Parse([]byte("site: a\nvoters: [a]\ninsecure: true\n"))
	if err != nil || !c.Insecure {
		t.Fatalf("insecure: true in YAML: %+v, %v", c.Insecure, err)
	}
}

func TestDefaultWithSiteAndVotersIsValid(t *testing.T) {
	c := validConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	if c.NeedsConfiguration() {
		t.Fatal("NeedsConfiguration() = true with a site name")
	}
	if !Default().NeedsConfiguration() {
		t.Fatal("Default().NeedsConfiguration() = false, want true (no site name)")
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	c := Default()
	c.Site = "Bad_Name"
	c.Gossip.BindAddress = "not-an-ip"
	c.Gossip.BindPort = 70000
	c.Gossip.AdvertiseAddress = "0.0.0.0"
	c.Gossip.AdvertisePort = -1
	c.Gossip.Seeds = []string{"10.0.0.1:99999", ""}
	c.Gossip.Key = "!!notbase64"
	c.Voters = []string{"v1", "v1", "UPPER"}
	c.Pools.Pod.Length = 8
	c.StateDir = "relative"
	c.APISocket = ""
	c.MetricsAddress = "nohostport"
	c.ManagementInterface = "eth0/x"
	c.Underlay.Interface = ""
	c.Underlay.Timeout = 0
	c.Allocator.RaftMultiplier = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil for a config full of errors")
	}
	want := []string{
		"site:", "gossip.bindAddress:", "gossip.bindPort:", "gossip.advertiseAddress:",
		"gossip.advertisePort:", "gossip.seeds[0]:", "gossip.seeds[1]:", "gossip.key:",
		"voters[1]:", "voters[2]:", "pools.pod", "stateDir:", "apiSocket:", "metricsAddress:",
		"managementInterface:", "underlay.interface:", "underlay.timeout:", "allocator.raftMultiplier:",
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range want {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error line starting with %q in:\n%s", w, err)
		}
	}
	if len(lines) < len(want) {
		t.Errorf("%d error lines, want at least %d (one per problem)", len(lines), len(want))
	}
}

func TestValidateMissingVotersAndSite(t *testing.T) {
	err := Default().Validate()
	if err == nil || !strings.Contains(err.Error(), "site: empty") || !strings.Contains(err.Error(), "voters: empty") {
		t.Fatalf("Validate() = %v, want site and voters reported", err)
	}
}

func TestGossipKeys(t *testing.T) {
	b64 := func(n int, fill byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n)) }
	for _, n := range []int{16, 24, 32} {
		c := validConfig(t)
		c.Gossip.Key = b64(n, 1)
		k, err := c.GossipKeys()
		if err != nil || len(k) != 1 || len(k[0]) != n {
			t.Errorf("%d-byte key: got %v, %v", n, k, err)
		}
	}
	c := validConfig(t)
	c.Gossip.Key = b64(10, 1)
	if _, err := c.GossipKeys(); err == nil || !strings.Contains(err.Error(), "key is 10 bytes") {
		t.Errorf("10-byte key: err = %v, want one naming the length", err)
	}
	// A ring, primary first, from commas (gossip.key, tfsite.key=) or lines.
	c.Gossip.Key = b64(32, 2) + "," + b64(16, 3)
	if k, err := c.GossipKeys(); err != nil || len(k) != 2 || k[0][0] != 2 || len(k[1]) != 16 {
		t.Errorf("two keys: got %v, %v; want the 32-byte primary, then the 16-byte one", k, err)
	}
	for in, want := range map[string]string{
		b64(32, 2) + "," + b64(10, 3):  "key 2 of 2 is 10 bytes",
		b64(32, 2) + ",!!!":            "key 2 of 2 is not base64",
		b64(32, 2) + ", " + b64(32, 2): "key 2 of 2 repeats key 1",
	} {
		c.Gossip.Key = in
		if _, err := c.GossipKeys(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "gossip.key: "+want) {
			t.Errorf("%q: Validate() = %v, want gossip.key: %s", in, err, want)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, []byte(b64(32, 4)+"\n"+b64(32, 5)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = validConfig(t)
	c.Gossip.KeyFile, c.Gossip.Key = p, ""
	if k, err := c.GossipKeys(); err != nil || len(k) != 2 || k[0][0] != 4 || k[1][0] != 5 {
		t.Errorf("key file with two lines: got %v, %v", k, err)
	}
	c.Gossip.KeyFile = filepath.Join(dir, "missing")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "gossip.keyFile:") {
		t.Errorf("missing key file: Validate() = %v, want gossip.keyFile error", err)
	}
	c.Gossip.KeyFile, c.Gossip.Key = p, "x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "both key and keyFile") {
		t.Errorf("key and keyFile: Validate() = %v", err)
	}
	c = validConfig(t)
	c.Gossip.Key = ""
	if k, err := c.GossipKeys(); k != nil || err != nil {
		t.Errorf("no key: got %v, %v; want nil, nil", k, err)
	}
}

// TestSeedAddress: the gossip port is the default (the forms are
// internal/hostport's, tested there).
func TestSeedAddress(t *testing.T) {
	if got, err := SeedAddress("site-b.lab"); err != nil || got != "site-b.lab:7946" {
		t.Errorf("SeedAddress(site-b.lab) = %q, %v; want site-b.lab:7946", got, err)
	}
	if _, err := SeedAddress("10.0.0.1:0"); err == nil {
		t.Error("port 0 accepted")
	}
}

func TestParseYAML(t *testing.T) {
	c, err := Parse([]byte(`
site: edge-1
gossip:
  bindPort: 8000
  seeds: [10.0.0.2, "10.0.0.3:8000"]
voters: [edge-1, edge-2, edge-3]
underlay:
  timeout: 5s
pools:
  asns: [{first: 65000, last: 65100}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "edge-1" || c.Gossip.BindPort != 8000 || len(c.Gossip.Seeds) != 2 || len(c.Voters) != 3 {
		t.Errorf("parsed %+v", c)
	}
	if c.Gossip.BindAddress != "0.0.0.0" || c.StateDir != DefaultStateDir {
		t.Errorf("defaults not kept for absent fields: %+v", c)
	}
	if time.Duration(c.Underlay.Timeout) != 5*time.Second || c.Underlay.Interface != "auto" {
		t.Errorf("underlay = %+v", c.Underlay)
	}
	if len(c.Pools.ASNs) != 1 || c.Pools.ASNs[0].First != 65000 || !c.Pools.Pod.Supernet.IsValid() {
		t.Errorf("pools = %+v (asns replaced, pod default kept)", c.Pools)
	}
}

func TestParseRejectsUnknownFieldsNamingThem(t *testing.T) {
	for doc, field := range map[string]string{
		"sitename: a\n":                   "sitename",
		"gossip:\n  bindHost: 1\n":        "bindHost",
		"underlay:\n  timeout: forever\n": "forever",
		"site: [a, b]\n":                  "site",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Parse(%q) = %v, want an error naming %q", doc, err, field)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) error spans lines: %q", doc, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("site: a\nvoters: [a]\n"))
	f.Add([]byte("gossip: {seeds: [x]}\nunderlay: {timeout: 3}\n"))
	f.Add([]byte("pools:\n  pod: {supernet: 10.0.0.0/8, length: 16}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		_ = c.Validate()
	})
}

// The complete example of docs/config.md must parse and validate, so the
// documentation cannot drift from the code.
func TestDocsExampleIsValid(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Complete example")
	if !ok {
		t.Fatal("docs/config.md has no \"## Complete example\"")
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("no yaml block in the complete example")
	}
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatalf("docs example does not parse: %v", err)
	}
	key := filepath.Join(t.TempDir(), "gossip.key")
	os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600)
	c.Gossip.KeyFile = key
	if err := c.Validate(); err != nil {
		t.Fatalf("docs example does not validate:\n%v", err)
	}
	// Every field of the table is documented: spot-check that each top-level
	// field of the example appears in the table.
	for _, f := range []string{"`site`", "`voters`", "`gossip.seeds`", "`allocator.bindPort`", "`allocator.raftMultiplier`", "`pools.pins`", "`stateDir`", "`apiSocket`", "`metricsAddress`", "`managementInterface`", "`underlay.timeout`", "`bringUp.enabled`", "`bringUp.guardWindow`", "`bringUp.probeTargets`", "`console.passwordHash`"} {
		if !strings.Contains(string(doc), "| "+f+" |") {
			t.Errorf("docs/config.md field table lacks %s", f)
		}
	}
}
