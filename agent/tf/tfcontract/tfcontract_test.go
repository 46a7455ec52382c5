package tfcontract

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestControlNodeRegistration: a server without a control node answers 404
// for it until AddControlNode, as TF before and after its provisioner ran.
func TestControlNodeRegistration(t *testing.T) {
	s := New(t, "")
	lookup := `{"type":"bgp-router","fq_name":["default-domain","default-project","ip-fabric","__default__","ctrl-1"]}`
	if r := post(t, s.URL+"/fqname-to-id", lookup); r.StatusCode != http.StatusNotFound {
		t.Fatalf("unregistered control node: HTTP %d", r.StatusCode)
	}
	if got := s.Routers(); len(got) != 0 {
		t.Fatalf("routers %v", got)
	}
	s.AddControlNode("ctrl-1")
	if r := post(t, s.URL+"/fqname-to-id", lookup); r.StatusCode != http.StatusOK {
		t.Fatalf("registered control node: HTTP %d", r.StatusCode)
	}
	raw, refs, ok := s.Router("ctrl-1")
	var p struct {
		Vendor string `json:"vendor"`
		ASN    uint32 `json:"autonomous_system"`
	}
	if !ok || len(refs) != 0 || json.Unmarshal(raw, &p) != nil || p.Vendor != "contrail" || p.ASN != s.ClusterASN() {
		t.Fatalf("control node %s refs %v ok %v", raw, refs, ok)
	}
	if !slices.Equal(s.Routers(), []string{"ctrl-1"}) {
		t.Fatalf("routers %v", s.Routers())
	}
	// Lookups are not writes; a rejected create is still a recorded write.
	if s.Writes() != 0 || len(s.Calls()) != 2 {
		t.Fatalf("writes %d calls %v", s.Writes(), s.Calls())
	}
	bad := post(t, s.URL+"/bgp-routers", `{"bgp-router":{"fq_name":["x"]}}`)
	var b bytes.Buffer
	_, _ = b.ReadFrom(bad.Body)
	if bad.StatusCode != http.StatusBadRequest || !strings.Contains(b.String(), "fq_name") || s.Writes() != 1 {
		t.Fatalf("bad create: HTTP %d %q, writes %d", bad.StatusCode, b.String(), s.Writes())
	}
	s.ResetCalls()
	if len(s.Calls()) != 0 {
		t.Fatal("ResetCalls kept calls")
	}
}
