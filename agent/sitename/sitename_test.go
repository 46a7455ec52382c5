package sitename

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, ok := range []string{"a", "edge-1", "0", strings.Repeat("a", MaxLen)} {
		if err := Validate(ok); err != nil || !Valid(ok) {
			t.Errorf("Validate(%q) = %v, want ok", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                            "empty",
		strings.Repeat("a", MaxLen+1): "longer than 63",
		"-a":                          "not a DNS label",
		"a-":                          "not a DNS label",
		"Edge":                        "not a DNS label",
		"a.b":                         "not a DNS label",
		"a_b":                         "not a DNS label",
	} {
		if err := Validate(name); err == nil || !strings.Contains(err.Error(), want) || Valid(name) {
			t.Errorf("Validate(%q) = %v, want an error saying %q", name, err, want)
		}
	}
}
