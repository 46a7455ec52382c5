package config

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/agent/pools"
)

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// seedDirs returns a temporary directory and an empty NoCloud seed
// directory inside it.
func seedDirs(t *testing.T) (dir, seed string) {
	t.Helper()
	dir = t.TempDir()
	seed = filepath.Join(dir, "seed")
	if err := os.Mkdir(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, seed
}

func TestLoadPrecedence(t *testing.T) {
	dir, seed := seedDirs(t)
	src := Sources{
		File: write(t, dir, "config.yaml", `
site: from-file
voters: [from-file]
gossip: {seeds: [10.0.0.1], bindPort: 8001}
stateDir: /srv/file
`),
		NoCloud: NoCloudDir(seed),
		Cmdline: write(t, dir, "cmdline", `BOOT_IMAGE=/vmlinuz console=ttyS0 tfsite.site=from-cmdline tfsite.seeds=10.0.0.7,10.0.0.8:9000 quiet`),
	}
	write(t, seed, "user-data", `#cloud-config
hostname: ignored-by-tfsite
tfsite:
  site: from-nocloud
  metricsAddress: 127.0.0.1:9999
  stateDir: /srv/nocloud
`)
	l, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.Site != "from-cmdline" {
		t.Errorf("site = %q, want the kernel command line's", c.Site)
	}
	if !slices.Equal(c.Gossip.Seeds, []string{"10.0.0.7", "10.0.0.8:9000"}) {
		t.Errorf("seeds = %v, want the command line's", c.Gossip.Seeds)
	}
	if c.StateDir != "/srv/nocloud" || c.MetricsAddress != "127.0.0.1:9999" {
		t.Errorf("stateDir/metrics = %q/%q, want NoCloud's over the file's", c.StateDir, c.MetricsAddress)
	}
	if c.Gossip.BindPort != 8001 || !slices.Equal(c.Voters, []string{"from-file"}) {
		t.Errorf("bindPort/voters = %d/%v, want the file's (no higher source sets them)", c.Gossip.BindPort, c.Voters)
	}
	if c.APISocket != DefaultAPISocket {
		t.Errorf("apiSocket = %q, want the default", c.APISocket)
	}
	if len(l.Applied) != 3 || !strings.HasPrefix(l.Applied[0], "file") || !strings.HasPrefix(l.Applied[1], "nocloud") || !strings.HasPrefix(l.Applied[2], "cmdline") {
		t.Errorf("Applied = %v, want file, nocloud, cmdline", l.Applied)
	}
}

func TestLoadNothingNeedsConfiguration(t *testing.T) {
	dir := t.TempDir()
	l, err := Load(context.Background(), Sources{
		File:    filepath.Join(dir, "absent.yaml"),
		Cmdline: write(t, dir, "cmdline", "console=ttyS0 root=/dev/vda2"),
		NoCloud: NoCloudDir(filepath.Join(dir, "no-seed")),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Config.NeedsConfiguration() || len(l.Applied) != 0 {
		t.Fatalf("Load with no sources = %+v, want needs-configuration", l)
	}
	if _, err := Load(context.Background(), Sources{File: filepath.Join(dir, "absent.yaml"), FileRequired: true}); err == nil {
		t.Fatal("a required, missing config file was not an error")
	}
}

func TestLoadBadSourcesAreInvalid(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]Sources{
		"file":    {File: write(t, dir, "bad.yaml", "site: a\nbogus: 1\n")},
		"cmdline": {Cmdline: write(t, dir, "cmdline", "tfsite.sitee=a")},
		"nocloud": {NoCloud: NoCloudDir(filepath.Dir(write(t, t.TempDir(), "user-data", "#cloud-config\ntfsite:\n  sight: a\n")))},
	} {
		_, err := Load(context.Background(), src)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Load = %v, want ErrInvalid", name, err)
		}
	}
}

func TestCmdlineKeys(t *testing.T) {
	dir := t.TempDir()
	doc := "site: from-doc\nvoters: [v1, v2]\nunderlay: {interface: eth9}\n"
	path := write(t, dir, "doc.yaml", doc)
	b64 := base64.StdEncoding.EncodeToString([]byte(doc))
	for name, tc := range map[string]struct {
		cmdline string
		check   func(Config) bool
	}{
		"path":         {"tfsite.config=" + path, func(c Config) bool { return c.Site == "from-doc" && c.Underlay.Interface == "eth9" }},
		"data-base64":  {"tfsite.config=data:;base64," + b64, func(c Config) bool { return c.Site == "from-doc" && len(c.Voters) == 2 }},
		"data-escaped": {"tfsite.config=data:,site:%20esc%0Avoters:%20[esc]", func(c Config) bool { return c.Site == "esc" && c.Voters[0] == "esc" }},
		"key-beats-doc": {"tfsite.site=key tfsite.config=" + path,
			func(c Config) bool { return c.Site == "key" && len(c.Voters) == 2 }},
		"quoted": {`tfsite.voters="a, b"  tfsite.site=a`, func(c Config) bool { return slices.Equal(c.Voters, []string{"a", "b"}) }},
		"bind": {"tfsite.bind=10.1.1.1:8000 tfsite.advertise=192.0.2.1", func(c Config) bool {
			return c.Gossip.BindAddress == "10.1.1.1" && c.Gossip.BindPort == 8000 && c.Gossip.AdvertiseAddress == "192.0.2.1"
		}},
		"off":       {"tfsite.underlay=off tfsite.metrics=off", func(c Config) bool { return c.Underlay.Disabled && c.MetricsAddress == "" }},
		"mgmt":      {"tfsite.mgmt=eth1 tfsite.statedir=/x", func(c Config) bool { return c.ManagementInterface == "eth1" && c.StateDir == "/x" }},
		"key":       {"tfsite.keyfile=/k tfsite.key=abc", func(c Config) bool { return c.Gossip.Key == "abc" && c.Gossip.KeyFile == "" }},
		"bringup":   {"tfsite.bringup=on", func(c Config) bool { return c.BringUp.Enabled }},
		"insecure":  {"tfsite.insecure=on", func(c Config) bool { return c.Insecure }},
		"unrelated": {"tfsitex=1 console=ttyS0 tfsite", func(c Config) bool { return c.Site == "" }},
	} {
		l, err := Load(context.Background(), Sources{Cmdline: write(t, dir, "cmdline-"+name, tc.cmdline)})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !tc.check(l.Config) {
			t.Errorf("%s: %q gave %+v", name, tc.cmdline, l.Config)
		}
	}
}

func TestCmdlineErrorsNameTheParameter(t *testing.T) {
	for cmdline, want := range map[string]string{
		"tfsite.sit=a":                  `"tfsite.sit"`,
		"tfsite.config=relative.yaml":   "tfsite.config",
		"tfsite.config=data:;base64,@@": "base64",
		"tfsite.config=data:nocomma":    "','",
		"tfsite.bind=1.2.3.4:99999":     "tfsite.bind",
		"tfsite.bringup=yes":            "tfsite.bringup=yes: want on or off",
	} {
		p, err := ParseCmdline(cmdline)
		if err == nil {
			err = p.Apply(new(Config))
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to mention %s", cmdline, err, want)
		}
	}
}

func TestUserData(t *testing.T) {
	for name, tc := range map[string]struct {
		ud      string
		applied bool
		site    string
		wantErr bool
	}{
		"cloud-config":  {"#cloud-config\npackages: [x]\ntfsite:\n  site: s1\n", true, "s1", false},
		"plain-yaml":    {"tfsite: {site: s2}\n", true, "s2", false},
		"no-section":    {"#cloud-config\nhostname: h\n", false, "", false},
		"script":        {"#!/bin/sh\necho hi\n", false, "", false},
		"empty":         {"", false, "", false},
		"null-section":  {"tfsite:\n", false, "", false},
		"unknown-field": {"tfsite:\n  sites: x\n", false, "", true},
		"not-mapping":   {"- a\n- b\n", false, "", true},
	} {
		c := Default()
		applied, err := ApplyUserData([]byte(tc.ud), &c)
		if (err != nil) != tc.wantErr || applied != tc.applied || c.Site != tc.site {
			t.Errorf("%s: applied=%v err=%v site=%q; want applied=%v err=%v site=%q", name, applied, err, c.Site, tc.applied, tc.wantErr, tc.site)
		}
	}
}

func TestNoCloudLabelWithoutVolume(t *testing.T) {
	ud, _, err := NoCloudLabel{ByLabelDir: t.TempDir()}.UserData(context.Background())
	if ud != nil || err != nil {
		t.Fatalf("no cidata volume: got %q, %v; want nil, nil", ud, err)
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`console=ttyS0 tfsite.site=a tfsite.seeds=1.2.3.4,b:7 tfsite.config=data:;base64,c2l0ZTogYQo=`)
	f.Add(`tfsite.voters="a b" tfsite.bind=[::1]:80 tfsite.underlay=off`)
	f.Add(`tfsite.config=data:,site:%20a tfsite.x`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCmdline(s)
		if err != nil {
			return
		}
		c := Default()
		_ = p.Apply(&c)
		_ = c.Validate()
	})
}

func FuzzUserData(f *testing.F) {
	f.Add([]byte("#cloud-config\ntfsite:\n  site: a\n"))
	f.Add([]byte("tfsite: [1]\n"))
	f.Add([]byte("#!/bin/sh\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Default()
		_, _ = ApplyUserData(b, &c)
	})
}

func FuzzDecodeDataURL(f *testing.F) {
	f.Add(";base64,c2l0ZTogYQo=")
	f.Add(",a%20b")
	f.Add("text/yaml;base64,@@")
	f.Fuzz(func(t *testing.T, s string) { _, _ = DecodeDataURL(s) })
}

// A list from a higher source replaces the lower source's list as a whole:
// encoding/json would decode it into the existing items, so a pin for site b
// would keep the ASN and pod of the file's pin for site a.
func TestLoadReplacesListsOfObjects(t *testing.T) {
	dir, seed := seedDirs(t)
	src := Sources{
		File: write(t, dir, "config.yaml", `
site: a
pools:
  asns: [{first: 64512, last: 65534}]
  pins: [{site: a, asn: 64600, pod: 10.32.8.0/21}]
  reserved: {asns: [{first: 64512, last: 64520}]}
`),
		NoCloud: NoCloudDir(seed),
	}
	write(t, seed, "user-data", `#cloud-config
tfsite:
  Pools:
    ASNs: [{last: 65000}]
    pins: [{site: b}]
    reserved: {asns: [{last: 64600}]}
`)
	l, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	p := l.Config.Pools
	if len(p.Pins) != 1 || p.Pins[0] != (pools.Pin{Site: "b"}) {
		t.Errorf("pins = %+v, want only NoCloud's pin for b, with nothing of the file's pin for a", p.Pins)
	}
	if want := []pools.ASNRange{{Last: 65000}}; !slices.Equal(p.ASNs, want) {
		t.Errorf("asns = %+v, want %+v (NoCloud's list as written)", p.ASNs, want)
	}
	if want := []pools.ASNRange{{Last: 64600}}; !slices.Equal(p.Reserved.ASNs, want) {
		t.Errorf("reserved asns = %+v, want %+v", p.Reserved.ASNs, want)
	}
}

// A document that fails to decode leaves the config as it was, the items of
// its lists included.
func TestParseIntoFailureChangesNothing(t *testing.T) {
	c, err := Parse([]byte("site: a\npools: {pins: [{site: a, asn: 64600}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := parseInto([]byte("pools: {pins: [{site: b, asn: 64601, bogus: 1}]}\n"), &c); err == nil || !strings.Contains(err.Error(), `unknown field "bogus"`) {
		t.Fatalf("err = %v, want unknown field", err)
	}
	if len(c.Pools.Pins) != 1 || c.Pools.Pins[0] != (pools.Pin{Site: "a", ASN: 64600}) {
		t.Errorf("pins = %+v after a failed document, want the earlier pin for a", c.Pools.Pins)
	}
}
