package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecodeRejectsNonAgentAnswers(t *testing.T) {
	if _, err := DecodeStatus(strings.NewReader(`{"site":"a"}`)); err == nil {
		t.Error("status without phase accepted")
	}
	if _, err := DecodeStatus(strings.NewReader(`<html>`)); err == nil {
		t.Error("HTML accepted as status")
	}
	if _, err := DecodePeers(strings.NewReader(`[{"state":"alive"}]`)); err == nil {
		t.Error("peer without site accepted")
	}
	if _, err := DecodeStatus(strings.NewReader(`{"phase":"allocated","allocation":{"pod":"10.0.0.0/33"}}`)); err == nil {
		t.Error("invalid prefix accepted")
	}
}

func FuzzDecodeStatus(f *testing.F) {
	b, _ := json.Marshal(sampleStatus())
	f.Add(b)
	f.Add([]byte(`{"phase":"x","peers":[{"site":"a","allocation":{"asn":1,"pod":"::/0"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeStatus(bytes.NewReader(b))
		if err != nil {
			return
		}
		// What decodes must encode and decode again to the same phase.
		again, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("re-encoding decoded status: %v", err)
		}
		st2, err := DecodeStatus(bytes.NewReader(again))
		if err != nil || st2.Phase != st.Phase {
			t.Fatalf("round trip: %v %q != %q", err, st2.Phase, st.Phase)
		}
	})
}

func FuzzDecodePeers(f *testing.F) {
	b, _ := json.Marshal(sampleStatus().Peers)
	f.Add(b)
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = DecodePeers(bytes.NewReader(b)) })
}

func FuzzDecodeBGPPeers(f *testing.F) {
	f.Add([]byte(`[{"site":"b","asn":64514,"address":"192.0.2.11"}]`))
	f.Add([]byte(`[{"site":"b","asn":0,"address":"192.0.2.11"}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := DecodeBGPPeers(bytes.NewReader(b))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		for _, p := range peers {
			if p.Site == "" || p.ASN == 0 || !p.Address.IsValid() {
				t.Fatalf("accepted an incomplete peer: %+v", p)
			}
		}
	})
}

func FuzzDecodeError(f *testing.F) {
	f.Add(409, []byte(`{"error":"conflict: x"}`))
	f.Add(500, []byte(`plain`))
	f.Fuzz(func(t *testing.T, code int, b []byte) {
		if err := DecodeError(code, bytes.NewReader(b)); err == nil {
			t.Fatal("DecodeError returned nil")
		}
	})
}

func TestWriteStatus(t *testing.T) {
	var b bytes.Buffer
	if err := WriteStatus(&b, sampleStatus()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"site", "site-a", "asn", "64513", "10.32.8.0/21", "eth0 192.0.2.10/24 gateway 192.0.2.1", "raft leader", "peers (2):", "site-b", "64514", "site-c", "dead"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	st := sampleStatus()
	st.BringUp = &BringUp{Phase: "vrouter-reverted", Error: "delete marker to retry", PeersConfigured: 2,
		Vrouter: &VrouterOutcome{Reason: "gateway lost", Ended: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}}
	_ = WriteStatus(&b, st)
	for _, want := range []string{"bring-up", "vrouter-reverted: delete marker to retry", "REVERTED: gateway lost (2026-11-25T10:00:00Z)", "2 configured"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	st.BringUp = &BringUp{Phase: "waiting", Waiting: "the peer sites are not known: agent down"}
	_ = WriteStatus(&b, st)
	if !strings.Contains(b.String(), "waiting: the peer sites are not known: agent down") {
		t.Errorf("a waiting bring-up does not say what it waits for:\n%s", b.String())
	}
	b.Reset()
	_ = WriteStatus(&b, Status{Phase: PhaseNeedsConfiguration})
	if !strings.Contains(b.String(), "(not configured)") || !strings.Contains(b.String(), "needs-configuration") {
		t.Errorf("unconfigured status:\n%s", b.String())
	}
}
