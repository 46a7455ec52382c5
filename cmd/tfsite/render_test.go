package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return 1
	}
	return 0
}

const siteYAML = `site: alpha
asn: 64601
pod: 10.40.0.0/16
service: 10.41.0.0/16
fabric: 10.42.0.0/16
address: 192.168.50.10
gateway: 192.168.50.1
interface: eth0
`

func TestRenderCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "site.yaml")
	os.WriteFile(cfg, []byte(siteYAML), 0o600)
	out := filepath.Join(dir, "out")
	if _, err := runCmd(t, "render", "--config", cfg, "--asn", "64777", "--out", out); err != nil {
		t.Fatal(err)
	}
	tfYAML, _ := os.ReadFile(filepath.Join(out, "tf.yaml"))
	if !strings.Contains(string(tfYAML), `BGP_ASN: "64777"`) {
		t.Fatal("--asn did not override the file")
	}
	if _, err := os.Stat(filepath.Join(out, "kubeadm.yaml")); err != nil {
		t.Fatal(err)
	}
	_, err := runCmd(t, "render", "--config", cfg, "--gateway", "192.168.50.10", "--out", out)
	if exitCode(err) != exitRenderUsage || !strings.Contains(err.Error(), "not the master") {
		t.Fatalf("master as gateway: %v", err)
	}
	if _, err := runCmd(t, "render", "--config", cfg); exitCode(err) != exitRenderUsage {
		t.Fatalf("missing --out: %v", err)
	}
}

func TestPeeringCommand(t *testing.T) {
	out, err := runCmd(t, "peering", "--format", "bird", "--site", "alpha", "--asn", "64601", "--pod", "10.40.0.0/16",
		"--address", "10.0.1.10", "--peer", "name=beta,address=10.0.2.10,asn=64602")
	if err != nil || !strings.Contains(out, "neighbor 10.0.2.10 as 64602;") || !strings.Contains(out, "router id 10.0.1.10;") {
		t.Fatalf("%v\n%s", err, out)
	}
	_, err = runCmd(t, "peering", "--site", "alpha", "--asn", "64601", "--pod", "10.40.0.0/16", "--address", "10.0.1.10",
		"--peer", "name=beta,asn=1")
	if exitCode(err) != exitRenderUsage {
		t.Fatalf("bad peer: %v", err)
	}
	if _, err := runCmd(t, "peering", "--format", "frr"); exitCode(err) != exitRenderUsage || !strings.Contains(err.Error(), "asn") {
		t.Fatalf("missing local params: %v", err)
	}
}

// peering refuses a peer with the site's own ASN or address, and input
// files over their limit, naming them (exit 2).
func TestPeeringRefusesItselfAndOversizedInput(t *testing.T) {
	local := []string{"peering", "--site", "alpha", "--asn", "64601", "--pod", "10.40.0.0/16", "--address", "10.0.1.10"}
	for peer, want := range map[string]string{
		"name=beta,address=10.0.2.10,asn=64601": `peer "beta": asn 64601 is this site's own ASN`,
		"name=beta,address=10.0.1.10,asn=64602": `peer "beta": address 10.0.1.10 is this site's own address`,
	} {
		_, err := runCmd(t, append(local, "--peer", peer)...)
		if exitCode(err) != exitRenderUsage || !strings.Contains(err.Error(), want) {
			t.Errorf("--peer %s: exit %d, %v; want %d and %q", peer, exitCode(err), err, exitRenderUsage, want)
		}
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "peers.yaml")
	if err := os.WriteFile(big, []byte("peers: []\n"+strings.Repeat("# padding\n", maxInputFile/10+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runCmd(t, append(local, "--peers-file", big)...)
	if want := "--peers-file " + big + " is larger than 1 MiB, the limit"; exitCode(err) != exitRenderUsage || err == nil || err.Error() != want {
		t.Errorf("big --peers-file: exit %d, %v; want %d and %q", exitCode(err), err, exitRenderUsage, want)
	}
	_, err = runCmd(t, "render", "--config", big, "--out", filepath.Join(dir, "out"))
	if want := "--config file " + big + " is larger than 1 MiB, the limit"; exitCode(err) != exitRenderUsage || err == nil || err.Error() != want {
		t.Errorf("big --config: exit %d, %v; want %d and %q", exitCode(err), err, exitRenderUsage, want)
	}
}
