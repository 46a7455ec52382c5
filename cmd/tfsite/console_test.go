package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestConsoleHelpTeaches(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"console", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Exit codes:", "80x24", "recovery password", "tfsite console"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console --help lacks %q", want)
		}
	}
}
