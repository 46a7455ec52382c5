package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tfsite/tfsite/internal/testrig"
)

func TestMain(m *testing.M) { testrig.Main(m) }

func TestVersionCommand(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatalf("tfsite version: %v", err)
	}
	if !strings.HasPrefix(out.String(), "tfsite ") {
		t.Fatalf("tfsite version printed %q", out.String())
	}
}

func TestUnknownCommandFails(t *testing.T) {
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"no-such-command"})
	if err := root.Execute(); err == nil {
		t.Fatal("unknown subcommand did not fail")
	}
}
