package probe

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]string{"icmp:10.0.0.1": "icmp:10.0.0.1", "tcp:10.0.0.1:6443": "tcp:10.0.0.1:6443", "tcp:[2001:db8::1]:22": "tcp:[2001:db8::1]:22"} {
		got, err := Parse(in)
		if err != nil || got.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "icmp:", "icmp:host", "tcp:10.0.0.1", "tcp:10.0.0.1:0", "udp:1.1.1.1:53", "icmp:2001:db8::1"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
