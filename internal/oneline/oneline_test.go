package oneline

import "testing"

func TestOf(t *testing.T) {
	for in, want := range map[string]string{
		"":                                     "",
		"  one  ":                              "one",
		"kubeadm init failed:\n\terror: x\r\n": "kubeadm init failed: error: x",
		"a\n\nb":                               "a b",
	} {
		if got := Of(in); got != want {
			t.Errorf("Of(%q) = %q, want %q", in, got, want)
		}
	}
}
