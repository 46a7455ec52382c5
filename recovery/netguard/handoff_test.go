package netguard

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRequestChecks(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if err := st.WriteRequest(&Request{ID: "../../etc/passwd"}); err == nil {
		t.Fatal("a request id that is a path was accepted")
	}
	if _, err := st.TakeRequest("x"); err == nil || !strings.Contains(err.Error(), "change id") {
		t.Fatalf("take of a bad id: %v", err)
	}
	for name, data := range map[string]string{
		"no plan":    `{"version":1,"id":"20261125T181000.026Z-4242","timeout":"10s","settle":"3s"}`,
		"bad target": `{"version":1,"id":"20261125T181000.026Z-4242","plan":{"operations":[{"op":"link-up","link":"eth0"}]},"timeout":"10s","settle":"3s","targets":["udp:1"]}`,
		"extra":      `{"version":1,"id":"20261125T181000.026Z-4242","evil":1}`,
		"too big":    `{"version":1,"id":"` + strings.Repeat("a", maxRequestBytes) + `"}`,
	} {
		if _, err := DecodeRequest([]byte(data)); !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line ErrCorrupt", name, err)
		}
	}
	r := &Request{ID: "20261125T181000.026Z-4242", Plan: mustPlan(t, "operations: [{op: link-up, link: eth0}]"), Timeout: Duration(time.Hour * 2), Settle: Duration(time.Second)}
	if _, err := r.Config(Default()); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a request with a 2h window: %v", err)
	}
}
