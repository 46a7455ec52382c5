package tf

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/site"
)

func peers(sites ...string) []site.BGPPeer {
	all := map[string]site.BGPPeer{
		"beta":  {Site: "beta", Address: netip.MustParseAddr("10.0.2.10"), ASN: 64602},
		"gamma": {Site: "gamma", Address: netip.MustParseAddr("10.0.3.10"), ASN: 64603},
		"delta": {Site: "delta", Address: netip.MustParseAddr("10.0.4.10"), ASN: 4200000004},
	}
	var out []site.BGPPeer
	for _, s := range sites {
		out = append(out, all[s])
	}
	return out
}

func newTestPeering(t *testing.T, s *vncServer, asn uint32) *Peering {
	t.Helper()
	cfg := DefaultPeeringConfig()
	cfg.Endpoint, cfg.LocalRouter, cfg.ASN = s.srv.URL, "alpha-ctrl", asn
	p, err := NewPeering(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPeeringConvergesAndIsIdempotent(t *testing.T) {
	s := newVNCServer(t, "alpha-ctrl")
	p := newTestPeering(t, s, 64601)
	ctx := context.Background()
	ch, err := p.Reconcile(ctx, peers("gamma", "beta"))
	if err != nil {
		t.Fatal(err)
	}
	if !ch.ASNSet || !slices.Equal(ch.Created, []string{"tfsite-beta", "tfsite-gamma"}) || len(ch.Linked) != 2 {
		t.Fatalf("changes: %+v", ch)
	}
	if got := s.gscASN(); got != 64601 {
		t.Fatalf("cluster ASN %d, want 64601", got)
	}
	for _, pr := range peers("beta", "gamma") {
		params, _, ok := s.router(PeerName(pr.Site))
		if !ok {
			t.Fatalf("no bgp-router for %s", pr.Site)
		}
		if params.AutonomousSystem != pr.ASN || params.Address != pr.Address.String() || params.Identifier != pr.Address.String() ||
			params.Port != 179 || params.RouterType != "external-control-node" || strings.EqualFold(params.Vendor, "contrail") ||
			!slices.Equal(params.AddressFamilies.Family, DefaultFamilies) {
			t.Fatalf("%s: params %+v", pr.Site, params)
		}
	}
	localParams, refs, _ := s.router("alpha-ctrl")
	if !slices.Equal(refs, []string{"tfsite-beta", "tfsite-gamma"}) {
		t.Fatalf("local control node refs %v", refs)
	}
	if localParams.AutonomousSystem != 64601 {
		t.Fatalf("local control node ASN %d: schema transformer should have moved it to the cluster ASN", localParams.AutonomousSystem)
	}

	s.resetCalls()
	ch, err = p.Reconcile(ctx, peers("beta", "gamma"))
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Empty() || s.writes() != 0 {
		t.Fatalf("second reconcile wrote: %+v, %d writes: %v", ch, s.writes(), s.calls)
	}
}

func TestPeeringRemovesReleasedSitesOnly(t *testing.T) {
	s := newVNCServer(t, "alpha-ctrl")
	p := newTestPeering(t, s, 64601)
	ctx := context.Background()
	// A router an operator registered by hand must survive.
	mx, err := p.vnc.Create(ctx, typeBGPRouter, map[string]any{"fq_name": append(slices.Clone(IPFabricRI), "mx1"),
		"parent_type": typeRI, "bgp_router_parameters": BGPRouterParams{AutonomousSystem: 65000, Identifier: "10.9.9.9",
			Address: "10.9.9.9", Vendor: "juniper", RouterType: "router", AddressFamilies: AddressFamilies{Family: []string{"inet-vpn"}}}})
	if err != nil || mx == "" {
		t.Fatal(err)
	}
	if _, err := p.Reconcile(ctx, peers("beta", "gamma")); err != nil {
		t.Fatal(err)
	}
	ch, err := p.Reconcile(ctx, peers("beta"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Unlinked, []string{"tfsite-gamma"}) || !slices.Equal(ch.Deleted, []string{"tfsite-gamma"}) || len(ch.Created) != 0 {
		t.Fatalf("changes %+v", ch)
	}
	if _, _, ok := s.router("tfsite-gamma"); ok {
		t.Fatal("released site's router still there")
	}
	if _, _, ok := s.router("mx1"); !ok {
		t.Fatal("hand-made router deleted")
	}
	if _, refs, _ := s.router("alpha-ctrl"); !slices.Equal(refs, []string{"tfsite-beta"}) {
		t.Fatalf("refs %v", refs)
	}
	if ch, err := p.Reconcile(ctx, nil); err != nil || !slices.Equal(ch.Deleted, []string{"tfsite-beta"}) {
		t.Fatalf("%+v %v", ch, err)
	}
}

func TestPeeringUpdatesChangedPeer(t *testing.T) {
	s := newVNCServer(t, "alpha-ctrl")
	p := newTestPeering(t, s, 64601)
	ctx := context.Background()
	if _, err := p.Reconcile(ctx, peers("beta")); err != nil {
		t.Fatal(err)
	}
	moved := peers("beta")
	moved[0].ASN, moved[0].Address = 64700, netip.MustParseAddr("10.0.20.10")
	ch, err := p.Reconcile(ctx, moved)
	if err != nil || !slices.Equal(ch.Updated, []string{"tfsite-beta"}) || len(ch.Linked) != 0 {
		t.Fatalf("%+v %v", ch, err)
	}
	if params, _, _ := s.router("tfsite-beta"); params.AutonomousSystem != 64700 || params.Address != "10.0.20.10" {
		t.Fatalf("params %+v", params)
	}
}

func TestPeeringFourByteASN(t *testing.T) {
	s := newVNCServer(t, "alpha-ctrl")
	p := newTestPeering(t, s, 4200000001)
	if _, err := p.Reconcile(context.Background(), peers("delta", "beta")); err != nil {
		t.Fatal(err)
	}
	if s.gscASN() != 4200000001 {
		t.Fatalf("asn %d", s.gscASN())
	}
	if params, _, _ := s.router("tfsite-delta"); params.AutonomousSystem != 4200000004 || params.Identifier != "10.0.4.10" {
		t.Fatalf("%+v", params)
	}
}

func TestPeeringWaitsForLocalRouter(t *testing.T) {
	s := newVNCServer(t, "other-node")
	p := newTestPeering(t, s, 64601)
	_, err := p.Reconcile(context.Background(), peers("beta"))
	if !errors.Is(err, ErrLocalRouterMissing) {
		t.Fatalf("got %v", err)
	}
}

func TestPeeringRejectsBadPeers(t *testing.T) {
	s := newVNCServer(t, "alpha-ctrl")
	p := newTestPeering(t, s, 64601)
	bad := []site.BGPPeer{{Site: "Beta!", Address: netip.MustParseAddr("10.0.0.1"), ASN: 1}, {Site: "x"}, {Site: "x"},
		{Site: "v6", Address: netip.MustParseAddr("fd00::1"), ASN: 5}}
	_, err := p.Reconcile(context.Background(), bad)
	for _, want := range []string{`"Beta!"`, "address missing", "ASN missing", "twice", "IPv4"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if s.writes() != 0 {
		t.Fatal("bad desired state reached the API")
	}
}

func TestPeeringConfigValidate(t *testing.T) {
	cfg := DefaultPeeringConfig()
	cfg.Vendor, cfg.RouterType, cfg.Families = "contrail", "control-node", nil
	err := cfg.Validate()
	for _, want := range []string{"endpoint", "localRouter", "asn", "families", "routerType", "vendor"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// TestContractServerRejectsBadObjects shows the contract server enforces the
// schema, so the tests above could fail if the client sent wrong objects.
func TestContractServerRejectsBadObjects(t *testing.T) {
	s := newVNCServer(t, "alpha-ctrl")
	c, _ := NewVNC(s.srv.URL, nil)
	ctx := context.Background()
	fq := func(n string) []string { return append(slices.Clone(IPFabricRI), n) }
	good := func() map[string]any {
		return map[string]any{"autonomous_system": 64602, "identifier": "10.0.2.10", "address": "10.0.2.10",
			"vendor": "tfsite", "router_type": "router"}
	}
	for name, body := range map[string]map[string]any{
		"missing identifier": {"fq_name": fq("a"), "bgp_router_parameters": func() map[string]any { g := good(); delete(g, "identifier"); return g }()},
		"missing asn":        {"fq_name": fq("b"), "bgp_router_parameters": func() map[string]any { g := good(); delete(g, "autonomous_system"); return g }()},
		"missing address":    {"fq_name": fq("c"), "bgp_router_parameters": func() map[string]any { g := good(); delete(g, "address"); return g }()},
		"4-byte asn":         {"fq_name": fq("d"), "bgp_router_parameters": func() map[string]any { g := good(); g["autonomous_system"] = 4200000000; return g }()},
		"unknown field":      {"fq_name": fq("e"), "bgp_router_parameters": func() map[string]any { g := good(); g["asn"] = 1; return g }()},
		"bad router_type":    {"fq_name": fq("f"), "bgp_router_parameters": func() map[string]any { g := good(); g["router_type"] = "peer"; return g }()},
		"wrong parent":       {"fq_name": []string{"default-domain", "x"}, "bgp_router_parameters": good()},
		"no params":          {"fq_name": fq("g")},
	} {
		if _, err := c.Create(ctx, typeBGPRouter, body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The trap: a contrail-vendor router is forced to the cluster ASN.
	g := good()
	g["vendor"] = "contrail"
	if _, err := c.Create(ctx, typeBGPRouter, map[string]any{"fq_name": fq("trap"), "bgp_router_parameters": g}); err != nil {
		t.Fatal(err)
	}
	if params, _, _ := s.router("trap"); params.AutonomousSystem != 64512 {
		t.Fatalf("contrail-vendor router kept ASN %d", params.AutonomousSystem)
	}
	// A referenced router cannot be deleted; a bad family is refused.
	peer, err := c.Create(ctx, typeBGPRouter, map[string]any{"fq_name": fq("peer"), "bgp_router_parameters": good()})
	if err != nil {
		t.Fatal(err)
	}
	local, _ := c.FQNameToID(ctx, typeBGPRouter, fq("alpha-ctrl"))
	if err := c.RefUpdate(ctx, typeBGPRouter, local, typeBGPRouter, peer, true, peeringAttr([]string{"ipv4"})); err == nil {
		t.Error("bad address family accepted")
	}
	if err := c.RefUpdate(ctx, typeBGPRouter, local, typeBGPRouter, peer, true, nil); err == nil {
		t.Error("ref without attr accepted")
	}
	if err := c.RefUpdate(ctx, typeBGPRouter, local, typeBGPRouter, peer, true, peeringAttr(DefaultFamilies)); err != nil {
		t.Fatal(err)
	}
	var apiErr *APIError
	if err := c.Delete(ctx, typeBGPRouter, peer); !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Errorf("deleting a referenced router: %v", err)
	}
	if _, err := c.FQNameToID(ctx, typeBGPRouter, fq("nope")); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing name: %v", err)
	}
}

func TestPeeringRun(t *testing.T) {
	s := newVNCServer(t, "alpha-ctrl")
	cfg := DefaultPeeringConfig()
	cfg.Endpoint, cfg.LocalRouter, cfg.ASN, cfg.Interval = s.srv.URL, "alpha-ctrl", 64601, time.Hour
	want := make(chan []site.BGPPeer, 1)
	want <- peers("beta")
	cur := peers("beta")
	p, err := NewPeering(cfg, func() []site.BGPPeer {
		select {
		case cur = <-want:
		default:
		}
		return cur
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- p.Run(context.Background()) }()
	waitFor := func(cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal("timed out")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(func() bool { _, _, ok := s.router("tfsite-beta"); return ok })
	want <- peers("gamma")
	p.Wake()
	waitFor(func() bool {
		_, _, b := s.router("tfsite-beta")
		_, _, g := s.router("tfsite-gamma")
		return !b && g
	})
	p.Close()
	p.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeBGPRouter(f *testing.F) {
	f.Add([]byte(`{"uuid":"u","fq_name":["a","b"],"bgp_router_parameters":{"autonomous_system":1},"bgp_router_refs":[{"to":["x"],"uuid":"v","attr":{"session":[{"attributes":[{"address_families":{"family":["inet-vpn"]}}]}]}}]}`))
	f.Add([]byte(`{"bgp_router_refs":[{"attr":null}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r BGPRouter
		if json.Unmarshal(data, &r) != nil {
			return
		}
		_ = r.Name()
		for _, ref := range r.Refs {
			_ = refFamilies(ref.Attr)
		}
	})
}
