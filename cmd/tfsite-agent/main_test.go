package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/tfsite/tfsite/cmd/internal/cli"
)

func code(err error) int {
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"agent"}, {"--site"}} {
		err := run(args)
		if code(err) != cli.ExitBadConfig || !strings.Contains(err.Error(), "--help") {
			t.Errorf("%v: err = %v (code %d), want exit 2 pointing at --help", args, err, code(err))
		}
	}
}

func TestHelpAndVersionExitZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"--version"}} {
		if err := run(args); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestHelpExamplesRunThisBinary(t *testing.T) {
	fl := pflag.NewFlagSet("tfsite-agent", pflag.ContinueOnError)
	var f cli.AgentFlags
	f.Register(fl)
	var b strings.Builder
	usage(&b, fl)
	help := b.String()
	if !strings.Contains(help, "\n  tfsite-agent --site lab-a") || strings.Contains(help, "tfsite agent --") || strings.Contains(help, "%!") {
		t.Errorf("tfsite-agent --help examples should run tfsite-agent:\n%s", help)
	}
	if !strings.Contains(help, "--seeds") {
		t.Errorf("help lists no flags:\n%s", help)
	}
}

func TestInvalidConfigExitsTwo(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("site: Bad\nvoters: []\n"), 0o644)
	err := run([]string{"--cmdline", "", "--nocloud", "off", "--platform", "none", "--config", bad, "--metrics", "off"})
	if code(err) != cli.ExitBadConfig || !strings.Contains(err.Error(), "site:") || !strings.Contains(err.Error(), "voters:") {
		t.Fatalf("invalid config: err = %v (code %d), want exit 2 listing site and voters", err, code(err))
	}
}
