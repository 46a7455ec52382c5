package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestAgentFlagsOverrideSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	os.WriteFile(file, []byte("site: from-file\nvoters: [from-file]\nstateDir: /srv/x\n"), 0o644)
	cmdline := filepath.Join(dir, "cmdline")
	os.WriteFile(cmdline, []byte("tfsite.site=from-cmdline tfsite.seeds=10.0.0.9\n"), 0o644)
	var f AgentFlags
	fl := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	f.Register(fl)
	if err := fl.Parse([]string{"--config", file, "--cmdline", cmdline, "--nocloud", "off", "--platform", "none", "--site", "from-flag", "--voters", "a,b", "--no-underlay", "--socket", "/tmp/x.sock"}); err != nil {
		t.Fatal(err)
	}
	l, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if c.Site != "from-flag" || strings.Join(c.Voters, ",") != "a,b" || c.StateDir != "/srv/x" || c.Gossip.Seeds[0] != "10.0.0.9" || !c.Underlay.Disabled || c.APISocket != "/tmp/x.sock" {
		t.Fatalf("layered config = %+v", c)
	}
	if got := strings.Join(l.Applied, ";"); !strings.Contains(got, "file") || !strings.Contains(got, "cmdline") || !strings.HasSuffix(got, "flags") {
		t.Errorf("sources = %q", got)
	}
}
