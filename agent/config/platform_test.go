package config

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSiteFromFacts(t *testing.T) {
	for _, c := range []struct{ zone, region, id, want string }{
		{"eu-west-1b", "eu-west-1", "i-0abc1234def567890", "eu-west-1b-i-0abc1234def567890"},
		{"", "fsn1", "42", "fsn1-42"},
		{"projects/1/zones/US_Central1-A", "", "4520031799277581759", "projects-1-zones-us-central1-a-4520031799277581759"},
		{"westeurope-2", "westeurope", "02AAB8A4-74EF-476E-8182-F6D2BA4166A6", "westeurope-2-02aab8a4-74ef-476e-8182-f6d2ba4166a6"},
		{"a-very-long-availability-zone-name-of-some-cloud", "", "0123456789abcdef0123456789", "zone-name-of-some-cloud-0123456789abcdef0123456789"},
		{"nova", "", "", ""},
		{"", "", "--", ""},
	} {
		got := SiteFromFacts(c.zone, c.region, c.id)
		if c.want == "zone-name-of-some-cloud-0123456789abcdef0123456789" {
			if len(got) > 63 || !strings.HasSuffix(got, c.id) || strings.HasPrefix(got, "-") {
				t.Errorf("long: %q (want ≤ 63 characters ending in the instance id)", got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("SiteFromFacts(%q, %q, %q) = %q, want %q", c.zone, c.region, c.id, got, c.want)
		}
	}
}

type fakePlatform struct{ d *PlatformData }

func (f fakePlatform) Read(context.Context) (*PlatformData, error) { return f.d, nil }

// TestPlatformPrecedence: the cloud's facts are defaults under the file, its
// user-data sits over NoCloud and under the kernel command line.
func TestPlatformPrecedence(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("config.yaml", "voters: [from-file]\ngossip: {seeds: [10.0.0.1]}\n")
	seed := filepath.Join(dir, "seed")
	os.Mkdir(seed, 0o755)
	write("seed/user-data", "tfsite:\n  gossip: {seeds: [10.0.0.2]}\n  stateDir: /nocloud\n")
	cmdline := write("cmdline", "tfsite.statedir=/cmdline\n")
	pd := &PlatformData{Name: "aws", Where: "IMDSv2", InstanceID: "i-1", Zone: "eu-west-1b", PublicIPv4: netip.MustParseAddr("203.0.113.7"),
		UserData: []byte("#cloud-config\npackages: [htop]\ntfsite:\n  stateDir: /cloud\n  apiSocket: /run/cloud.sock\n")}
	l, err := Load(context.Background(), Sources{File: file, NoCloud: NoCloudDir(seed), Platform: fakePlatform{pd}, Cmdline: cmdline})
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.Site != "eu-west-1b-i-1" || c.Gossip.AdvertiseAddress != "203.0.113.7" {
		t.Errorf("facts: site %q advertise %q", c.Site, c.Gossip.AdvertiseAddress)
	}
	if !slices.Equal(c.Voters, []string{"from-file"}) || !slices.Equal(c.Gossip.Seeds, []string{"10.0.0.2"}) {
		t.Errorf("file and NoCloud: voters %v seeds %v", c.Voters, c.Gossip.Seeds)
	}
	if c.APISocket != "/run/cloud.sock" || c.StateDir != "/cmdline" {
		t.Errorf("cloud user-data over NoCloud, under the command line: socket %q stateDir %q", c.APISocket, c.StateDir)
	}
	want := []string{"platform aws facts", "file " + file, "nocloud " + filepath.Join(seed, "user-data"), "platform aws user-data IMDSv2", "cmdline " + cmdline}
	if !slices.Equal(l.Applied, want) {
		t.Errorf("applied %q\nwant    %q", l.Applied, want)
	}
	// A file naming the site wins over the facts.
	write("config.yaml", "site: named\n")
	if l, err := Load(context.Background(), Sources{File: file, Platform: fakePlatform{pd}}); err != nil || l.Config.Site != "named" {
		t.Errorf("site from the file: %q, %v", l.Config.Site, err)
	}
	// A bad tfsite: key in the cloud's user-data names the platform.
	pd.UserData = []byte("tfsite:\n  sitename: x\n")
	if _, err := Load(context.Background(), Sources{Platform: fakePlatform{pd}}); err == nil || !strings.Contains(err.Error(), "aws user-data IMDSv2") || !strings.Contains(err.Error(), `unknown field "sitename"`) {
		t.Errorf("bad user-data: %v", err)
	}
}
