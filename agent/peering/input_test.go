package peering

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePeerSpec(t *testing.T) {
	p, err := ParsePeerSpec("name=beta,address=10.0.2.10,asn=64602,accept=10.50.0.0/16;10.51.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "beta" || p.Address != netip.MustParseAddr("10.0.2.10") || p.ASN != 64602 || len(p.Accept) != 2 {
		t.Fatalf("%+v", p)
	}
	for in, want := range map[string]string{
		"name=beta":                         "missing address, asn",
		"name=a,address=x,asn=1":            "address",
		"name=a,address=1.2.3.4,asn=-1":     "asn",
		"name=a,address=1.2.3.4,asn=1,as=2": "unknown key",
		"name=a,name=b":                     "twice",
		"garbage":                           "key=value",
	} {
		if _, err := ParsePeerSpec(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

func TestParsePeersFile(t *testing.T) {
	ps, err := ParsePeersFile([]byte("peers:\n- name: beta\n  address: 10.0.2.10\n  asn: 64602\n  accept: [10.50.0.0/16]\n"))
	if err != nil || len(ps) != 1 || ps[0].Accept[0] != netip.MustParsePrefix("10.50.0.0/16") {
		t.Fatalf("%+v %v", ps, err)
	}
	if _, err := ParsePeersFile([]byte("peers:\n- name: beta\n  asn: 1\n")); err == nil {
		t.Fatal("entry without address accepted")
	}
	if _, err := ParsePeersFile([]byte("peers:\n- name: beta\n  adress: 10.0.0.1\n")); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func FuzzParsePeerSpec(f *testing.F) {
	f.Add("name=beta,address=10.0.2.10,asn=64602,accept=10.50.0.0/16")
	f.Add("name=,address")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeerSpec(s)
		if err != nil {
			return
		}
		if p.Name == "" || !p.Address.IsValid() {
			t.Fatalf("accepted incomplete peer %+v", p)
		}
	})
}

func FuzzParsePeersFile(f *testing.F) {
	f.Add([]byte("peers:\n- name: beta\n  address: 10.0.2.10\n  asn: 64602\n"))
	f.Add([]byte("peers: [{}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParsePeersFile(b)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Name == "" || p.ASN == 0 {
				t.Fatalf("accepted incomplete peer %+v", p)
			}
		}
	})
}

func TestExtraAddNamesTheFlag(t *testing.T) {
	l := Local{Site: "alpha", ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.1")}
	e := Extra{PeersFile: "peers.yaml", PeersData: []byte("peers: [{name: beta, address: 10.0.2.10, asn: 64602}]\n"),
		Specs: []string{"name=gamma,address=10.0.3.10,asn=64603"}, RouterID: "10.0.0.9"}
	got, peers, err := e.Add(l, []Peer{{Name: "delta", Address: netip.MustParseAddr("10.0.4.10"), ASN: 64604}})
	if err != nil || got.RouterID != netip.MustParseAddr("10.0.0.9") || len(peers) != 3 || peers[1].Name != "beta" || peers[2].Name != "gamma" {
		t.Fatalf("Add = %+v, %+v, %v", got, peers, err)
	}
	for e, want := range map[*Extra]string{
		{PeersFile: "p.yaml", PeersData: []byte("peers: [{nme: x}]")}: "p.yaml: ",
		{Specs: []string{"name=x"}}:                                   "--peer: ",
		{RouterID: "ten"}:                                             "--router-id: ",
	} {
		if _, _, err := e.Add(l, nil); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%+v: %v, want an error starting %q", *e, err, want)
		}
	}
}
