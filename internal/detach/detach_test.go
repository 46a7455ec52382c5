package detach

import (
	"strings"
	"testing"
)

func TestSpecValidateReportsAll(t *testing.T) {
	err := Spec{Argv: []string{"tfsite"}, Unit: "a b.service", LogFile: "guard.log"}.Validate()
	for _, want := range []string{"absolute path", "unit name", "log file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
	ok := Spec{Argv: []string{"/usr/bin/tfsite", "net", "guard"}, Unit: "tfsite-net-guard-20261125T181000.026Z-4242.service", LogFile: "/var/lib/tfsite/net/guard.log"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestStartedSaysWhereTheLogIs(t *testing.T) {
	if s := (Started{Unit: "u.service", Log: "journalctl -u u.service"}).String(); !strings.Contains(s, "journalctl -u u.service") {
		t.Errorf("unit: %q", s)
	}
	if s := (Started{PID: 42, Log: "/x/guard.log"}).String(); !strings.Contains(s, "process 42") || !strings.Contains(s, "/x/guard.log") {
		t.Errorf("process: %q", s)
	}
}
