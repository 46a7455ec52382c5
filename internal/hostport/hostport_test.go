package hostport

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.2":        "10.0.0.2:7946",
		"10.0.0.2:8000":   "10.0.0.2:8000",
		"seed.example":    "seed.example:7946",
		"[fd00::1]":       "[fd00::1]:7946",
		"fd00::1":         "[fd00::1]:7946",
		"[fd00::1]:17946": "[fd00::1]:17946",
	} {
		if got, err := Normalize(in, 7946); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":7946", "a b", "10.0.0.2:0", "10.0.0.2:70000", "10.0.0.2:http", "a,b", "[[x]]:1"} {
		if got, err := Normalize(in, 7946); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", in, got)
		}
	}
}
