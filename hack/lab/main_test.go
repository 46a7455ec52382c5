package main

import (
	"io"
	"strings"
	"testing"
)

func TestRunRefusesBadInvocations(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"up"}, "up what?"},
		{[]string{"down"}, "--dir is required"},
		{[]string{"up", "pair", "--dir", "/tmp/x", "--prefix", "Bad_Name"}, `--prefix "Bad_Name"`},
		{[]string{"up", "sites", "--dir", "/tmp/x", "--prefix", "ok", "a;rm"}, `site name "a;rm"`},
		{[]string{"sideways", "--dir", "/tmp/x", "--prefix", "ok"}, `unknown command "sideways"`},
	} {
		err := run(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
