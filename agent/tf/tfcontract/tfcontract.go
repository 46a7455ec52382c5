// Package tfcontract is a contract-test server for TF's VNC config API
// (contrail-api, REST on :8082). TF cannot run here, so this server stands in
// for contrail-api with the parts of the schema (tf-api-client schema:
// bgp-router, BgpRouterParams, BgpPeeringAttributes, global-system-config) the
// peering touches, enforced as the real API does: required fields, value
// ranges, fq_name/parent shape, unknown fields rejected, ref-update semantics,
// refusal to delete referenced objects, and the schema transformer's rule that
// contrail-vendor routers take the cluster ASN. It records every call so tests
// can assert that a converged state writes nothing.
//
// It encodes the schema on its own (it does not import agent/tf): it is the
// other side of the contract, so a client mistake cannot hide in shared
// constants. Only tests import it.
package tfcontract

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tfsite/tfsite/internal/strictjson"
)

// Schema names and fixed fq_names of the objects the server knows.
const (
	typeBGPRouter = "bgp-router"
	typeGSC       = "global-system-config"
	typeRI        = "routing-instance"
)

var (
	ipFabricRI         = []string{"default-domain", "default-project", "ip-fabric", "__default__"}
	globalSystemConfig = []string{"default-global-system-config"}
)

// addressFamilies is the schema's AddressFamilies type.
type addressFamilies struct {
	Family []string `json:"family"`
}

type object struct {
	typ    string
	uuid   string
	fqName []string
	parent string // parent uuid
	fields map[string]json.RawMessage
	refs   map[string]json.RawMessage // ref uuid -> attr (bgp_router_refs)
}

// Call is one request the server received.
type Call struct{ Method, Path string }

// Server is the contract-test config API. Its URL is the endpoint a client
// is given (http://127.0.0.1:PORT).
type Server struct {
	URL  string
	HTTP *httptest.Server

	mu    sync.Mutex
	objs  map[string]*object // uuid -> object
	calls []Call
}

var validFamilies = map[string]bool{ // schema AddressFamily enum
	"inet": true, "inet-labeled": true, "inet-vpn": true, "e-vpn": true, "erm-vpn": true,
	"route-target": true, "inet6": true, "inet-mvpn": true, "inet6-vpn": true,
}

var validRouterTypes = map[string]bool{ // schema BgpRouterType enum
	"control-node": true, "external-control-node": true, "router": true,
	"bgpaas-server": true, "bgpaas-client": true,
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// New starts a server seeded with what a fresh TF cluster has: the
// global-system-config with ASN 64512, the ip-fabric routing instance, and the
// local control node's bgp-router named local (vendor contrail, control-node).
// An empty local seeds no control node (TF's provisioner has not run yet);
// AddControlNode adds it later. The server stops at the test's cleanup.
func New(t testing.TB, local string) *Server {
	s := &Server{objs: map[string]*object{}}
	s.add(&object{typ: typeGSC, fqName: globalSystemConfig, fields: map[string]json.RawMessage{
		"autonomous_system": json.RawMessage(`64512`), "enable_4byte_as": json.RawMessage(`false`)}})
	s.add(&object{typ: typeRI, fqName: ipFabricRI, fields: map[string]json.RawMessage{}})
	if local != "" {
		s.AddControlNode(local)
	}
	s.HTTP = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.HTTP.URL
	t.Cleanup(s.HTTP.Close)
	return s
}

// AddControlNode registers a local control node's bgp-router named name, as
// TF's provision_control.py does when the control node starts.
func (s *Server) AddControlNode(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ri := s.byFQName(typeRI, ipFabricRI)
	s.add(&object{typ: typeBGPRouter, fqName: append(slices.Clone(ipFabricRI), name), parent: ri.uuid,
		fields: map[string]json.RawMessage{"bgp_router_parameters": json.RawMessage(
			`{"autonomous_system":64512,"identifier":"192.168.50.10","address":"192.168.50.10","port":179,` +
				`"vendor":"contrail","router_type":"control-node","address_families":{"family":["route-target","inet-vpn","e-vpn","erm-vpn","inet6-vpn"]}}`)}})
}

func (s *Server) add(o *object) *object {
	if o.uuid == "" {
		o.uuid = newUUID()
	}
	if o.refs == nil {
		o.refs = map[string]json.RawMessage{}
	}
	s.objs[o.uuid] = o
	return o
}

func (s *Server) byFQName(typ string, fq []string) *object {
	for _, o := range s.objs {
		if o.typ == typ && slices.Equal(o.fqName, fq) {
			return o
		}
	}
	return nil
}

// Calls returns the requests received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Writes counts the calls that could change state (all but reads and
// fqname-to-id lookups).
func (s *Server) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Method != http.MethodGet && c.Path != "/fqname-to-id" {
			n++
		}
	}
	return n
}

// ResetCalls forgets the recorded calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	s.calls = nil
	s.mu.Unlock()
}

// ClusterASN is global-system-config's autonomous_system.
func (s *Server) ClusterASN() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var asn uint32
	_ = json.Unmarshal(s.byFQName(typeGSC, globalSystemConfig).fields["autonomous_system"], &asn)
	return asn
}

// Router returns a bgp-router's stored bgp_router_parameters (JSON, as the
// API would return them) and the names of the routers it references.
func (s *Server) Router(name string) (params json.RawMessage, refs []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.byFQName(typeBGPRouter, append(slices.Clone(ipFabricRI), name))
	if o == nil {
		return nil, nil, false
	}
	for u := range o.refs {
		refs = append(refs, s.objs[u].fqName[len(s.objs[u].fqName)-1])
	}
	slices.Sort(refs)
	return slices.Clone(o.fields["bgp_router_parameters"]), refs, true
}

// Routers lists the names of all bgp-routers, sorted.
func (s *Server) Routers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, o := range s.objs {
		if o.typ == typeBGPRouter {
			names = append(names, o.fqName[len(o.fqName)-1])
		}
	}
	slices.Sort(names)
	return names
}

func httpErr(w http.ResponseWriter, code int, format string, a ...any) {
	http.Error(w, fmt.Sprintf(format, a...), code)
}

// schemaParams mirrors BgpRouterParams with the schema's field set; pointers
// tell missing required fields from zero values.
type schemaParams struct {
	AutonomousSystem      *int64           `json:"autonomous_system"`
	Identifier            *string          `json:"identifier"`
	Address               *string          `json:"address"`
	Port                  *int             `json:"port,omitempty"`
	SourcePort            *int             `json:"source_port,omitempty"`
	HoldTime              *int             `json:"hold_time,omitempty"`
	Vendor                *string          `json:"vendor,omitempty"`
	RouterType            *string          `json:"router_type,omitempty"`
	AddressFamilies       *addressFamilies `json:"address_families,omitempty"`
	LocalAutonomousSystem *int64           `json:"local_autonomous_system,omitempty"`
	AuthData              json.RawMessage  `json:"auth_data,omitempty"`
	AdminDown             *bool            `json:"admin_down,omitempty"`
	ClusterID             *int64           `json:"cluster_id,omitempty"`
}

func (s *Server) gsc4Byte() bool {
	var b bool
	_ = json.Unmarshal(s.byFQName(typeGSC, globalSystemConfig).fields["enable_4byte_as"], &b)
	return b
}

func (s *Server) checkParams(raw json.RawMessage) (json.RawMessage, error) {
	var p schemaParams
	if err := strictjson.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("bgp_router_parameters: %v", err)
	}
	switch {
	case p.AutonomousSystem == nil:
		return nil, fmt.Errorf("bgp_router_parameters.autonomous_system is required")
	case p.Identifier == nil || *p.Identifier == "":
		return nil, fmt.Errorf("bgp_router_parameters.identifier is required")
	case p.Address == nil || *p.Address == "":
		return nil, fmt.Errorf("bgp_router_parameters.address is required")
	}
	max := int64(65535)
	if s.gsc4Byte() {
		max = 4294967295
	}
	if *p.AutonomousSystem < 1 || *p.AutonomousSystem > max {
		return nil, fmt.Errorf("ASN out of range 1..%d: %d", max, *p.AutonomousSystem)
	}
	if a, err := netip.ParseAddr(*p.Identifier); err != nil || !a.Is4() {
		return nil, fmt.Errorf("identifier %q is not an IPv4 address", *p.Identifier)
	}
	if _, err := netip.ParseAddr(*p.Address); err != nil {
		return nil, fmt.Errorf("address %q is not an IP address", *p.Address)
	}
	if p.Port != nil && (*p.Port < 0 || *p.Port > 65535) {
		return nil, fmt.Errorf("port %d out of range", *p.Port)
	}
	if p.HoldTime != nil && (*p.HoldTime < 0 || *p.HoldTime > 65535) {
		return nil, fmt.Errorf("hold_time %d out of range", *p.HoldTime)
	}
	if p.RouterType != nil && !validRouterTypes[*p.RouterType] {
		return nil, fmt.Errorf("router_type %q not in BgpRouterType", *p.RouterType)
	}
	if p.AddressFamilies != nil {
		for _, f := range p.AddressFamilies.Family {
			if !validFamilies[f] {
				return nil, fmt.Errorf("address family %q not in AddressFamily", f)
			}
		}
	}
	// Schema transformer: a contrail-vendor router belongs to this cluster and
	// takes the cluster ASN, whatever was asked for.
	if p.Vendor != nil && strings.EqualFold(*p.Vendor, "contrail") {
		var gsc int64
		_ = json.Unmarshal(s.byFQName(typeGSC, globalSystemConfig).fields["autonomous_system"], &gsc)
		p.AutonomousSystem = &gsc
	}
	return json.Marshal(p)
}

func (s *Server) checkPeeringAttr(raw json.RawMessage) error {
	var a struct {
		Session []struct {
			UUID       *string `json:"uuid,omitempty"`
			Attributes []struct {
				BGPRouter       *string          `json:"bgp_router,omitempty"`
				AddressFamilies *addressFamilies `json:"address_families"`
				AdminDown       *bool            `json:"admin_down,omitempty"`
			} `json:"attributes"`
		} `json:"session"`
	}
	if err := strictjson.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("attr (BgpPeeringAttributes): %v", err)
	}
	if len(a.Session) == 0 {
		return fmt.Errorf("attr.session: need at least one BgpSession")
	}
	for _, ss := range a.Session {
		for _, at := range ss.Attributes {
			if at.AddressFamilies == nil {
				continue
			}
			for _, f := range at.AddressFamilies.Family {
				if !validFamilies[f] {
					return fmt.Errorf("attr address family %q not in AddressFamily", f)
				}
			}
		}
	}
	return nil
}

func (s *Server) view(o *object) map[string]any {
	m := map[string]any{"uuid": o.uuid, "fq_name": o.fqName, "href": s.URL + "/" + o.typ + "/" + o.uuid}
	for k, v := range o.fields {
		m[k] = v
	}
	if o.parent != "" {
		m["parent_type"] = s.objs[o.parent].typ
		m["parent_uuid"] = o.parent
	}
	if o.typ == typeBGPRouter && len(o.refs) > 0 {
		var refs []map[string]any
		for u, attr := range o.refs {
			refs = append(refs, map[string]any{"to": s.objs[u].fqName, "uuid": u, "attr": attr})
		}
		m["bgp_router_refs"] = refs
	}
	return m
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{r.Method, r.URL.Path})
	var body bytes.Buffer
	_, _ = body.ReadFrom(r.Body)
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/fqname-to-id":
		var req struct {
			Type   string   `json:"type"`
			FQName []string `json:"fq_name"`
		}
		if err := strictjson.Unmarshal(body.Bytes(), &req); err != nil || req.Type == "" || len(req.FQName) == 0 {
			httpErr(w, 400, "fqname-to-id needs type and fq_name: %v", err)
			return
		}
		o := s.byFQName(req.Type, req.FQName)
		if o == nil {
			httpErr(w, 404, "Name %s not found", strings.Join(req.FQName, ":"))
			return
		}
		reply(map[string]string{"uuid": o.uuid})
	case r.Method == http.MethodPost && r.URL.Path == "/ref-update":
		s.refUpdate(w, body.Bytes(), reply)
	case r.Method == http.MethodGet && len(parts) == 1 && strings.HasSuffix(parts[0], "s"):
		typ := strings.TrimSuffix(parts[0], "s")
		parent := r.URL.Query().Get("parent_id")
		detail := r.URL.Query().Get("detail") == "true"
		items := []map[string]any{}
		for _, o := range s.objs {
			if o.typ != typ || parent != "" && o.parent != parent {
				continue
			}
			if detail {
				items = append(items, map[string]any{typ: s.view(o)})
			} else {
				items = append(items, map[string]any{"uuid": o.uuid, "fq_name": o.fqName})
			}
		}
		reply(map[string]any{typ + "s": items})
	case r.Method == http.MethodPost && len(parts) == 1 && parts[0] == typeBGPRouter+"s":
		s.createRouter(w, body.Bytes(), reply)
	case len(parts) == 2:
		o := s.objs[parts[1]]
		if o == nil || o.typ != parts[0] {
			httpErr(w, 404, "%s %s not found", parts[0], parts[1])
			return
		}
		switch r.Method {
		case http.MethodGet:
			reply(map[string]any{o.typ: s.view(o)})
		case http.MethodPut:
			s.update(w, o, body.Bytes(), reply)
		case http.MethodDelete:
			for _, other := range s.objs {
				if _, ok := other.refs[o.uuid]; ok {
					httpErr(w, 409, "Delete when resource still referred: %s", strings.Join(other.fqName, ":"))
					return
				}
			}
			delete(s.objs, o.uuid)
			reply(map[string]any{})
		default:
			httpErr(w, 405, "method %s", r.Method)
		}
	default:
		httpErr(w, 404, "no route %s %s", r.Method, r.URL.Path)
	}
}

func (s *Server) createRouter(w http.ResponseWriter, b []byte, reply func(any)) {
	var req map[string]struct {
		FQName     []string        `json:"fq_name"`
		ParentType string          `json:"parent_type"`
		Params     json.RawMessage `json:"bgp_router_parameters"`
		Refs       json.RawMessage `json:"bgp_router_refs"`
	}
	if err := strictjson.Unmarshal(b, &req); err != nil {
		httpErr(w, 400, "bad bgp-router body: %v", err)
		return
	}
	in, ok := req[typeBGPRouter]
	if !ok || len(req) != 1 {
		httpErr(w, 400, "body must be {\"bgp-router\": {...}}")
		return
	}
	if len(in.FQName) != len(ipFabricRI)+1 || !slices.Equal(in.FQName[:len(ipFabricRI)], ipFabricRI) || in.FQName[len(ipFabricRI)] == "" {
		httpErr(w, 400, "fq_name %v: a bgp-router lives under %s", in.FQName, strings.Join(ipFabricRI, ":"))
		return
	}
	if in.ParentType != "" && in.ParentType != typeRI {
		httpErr(w, 400, "parent_type %q: must be routing-instance", in.ParentType)
		return
	}
	if in.Params == nil {
		httpErr(w, 400, "bgp_router_parameters is required")
		return
	}
	params, err := s.checkParams(in.Params)
	if err != nil {
		httpErr(w, 400, "%v", err)
		return
	}
	if s.byFQName(typeBGPRouter, in.FQName) != nil {
		httpErr(w, 409, "bgp-router %s already exists", strings.Join(in.FQName, ":"))
		return
	}
	ri := s.byFQName(typeRI, ipFabricRI)
	o := s.add(&object{typ: typeBGPRouter, fqName: in.FQName, parent: ri.uuid,
		fields: map[string]json.RawMessage{"bgp_router_parameters": params}})
	reply(map[string]any{typeBGPRouter: map[string]any{"uuid": o.uuid, "fq_name": o.fqName}})
}

func (s *Server) update(w http.ResponseWriter, o *object, b []byte, reply func(any)) {
	var req map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &req); err != nil || len(req) != 1 || req[o.typ] == nil {
		httpErr(w, 400, "body must be {%q: {...}}", o.typ)
		return
	}
	allowed := map[string][]string{
		typeGSC:       {"autonomous_system", "enable_4byte_as"},
		typeBGPRouter: {"bgp_router_parameters"},
	}[o.typ]
	fields := req[o.typ]
	if _, ok := fields["fq_name"]; ok {
		httpErr(w, 400, "fq_name cannot be changed")
		return
	}
	for k := range fields {
		if !slices.Contains(allowed, k) {
			httpErr(w, 400, "%s: unknown or read-only field %q", o.typ, k)
			return
		}
	}
	switch o.typ {
	case typeGSC:
		var asn int64
		four := s.gsc4Byte()
		if v, ok := fields["enable_4byte_as"]; ok {
			if err := json.Unmarshal(v, &four); err != nil {
				httpErr(w, 400, "enable_4byte_as: %v", err)
				return
			}
		}
		if v, ok := fields["autonomous_system"]; ok {
			if err := json.Unmarshal(v, &asn); err != nil {
				httpErr(w, 400, "autonomous_system: %v", err)
				return
			}
			if max := map[bool]int64{false: 65535, true: 4294967295}[four]; asn < 1 || asn > max {
				httpErr(w, 400, "autonomous_system %d out of range 1..%d (enable_4byte_as=%v)", asn, max, four)
				return
			}
		}
		for k, v := range fields {
			o.fields[k] = v
		}
		// Schema transformer: contrail-vendor routers follow the cluster ASN.
		for _, r := range s.objs {
			if r.typ == typeBGPRouter {
				if p, err := s.checkParams(r.fields["bgp_router_parameters"]); err == nil {
					r.fields["bgp_router_parameters"] = p
				}
			}
		}
	case typeBGPRouter:
		p, err := s.checkParams(fields["bgp_router_parameters"])
		if err != nil {
			httpErr(w, 400, "%v", err)
			return
		}
		o.fields["bgp_router_parameters"] = p
	}
	reply(map[string]any{o.typ: map[string]any{"uuid": o.uuid}})
}

func (s *Server) refUpdate(w http.ResponseWriter, b []byte, reply func(any)) {
	var req struct {
		Type      string          `json:"type"`
		UUID      string          `json:"uuid"`
		RefType   string          `json:"ref-type"`
		RefUUID   string          `json:"ref-uuid"`
		RefFQName []string        `json:"ref-fq-name,omitempty"`
		Operation string          `json:"operation"`
		Attr      json.RawMessage `json:"attr"`
	}
	if err := strictjson.Unmarshal(b, &req); err != nil {
		httpErr(w, 400, "ref-update: %v", err)
		return
	}
	if req.Operation != "ADD" && req.Operation != "DELETE" {
		httpErr(w, 400, "ref-update: operation must be ADD or DELETE, not %q", req.Operation)
		return
	}
	from := s.objs[req.UUID]
	if from == nil || from.typ != req.Type {
		httpErr(w, 404, "ref-update: %s %s not found", req.Type, req.UUID)
		return
	}
	if req.RefType != typeBGPRouter || from.typ != typeBGPRouter {
		httpErr(w, 400, "ref-update: %s has no %s refs", from.typ, req.RefType)
		return
	}
	to := s.objs[req.RefUUID]
	if req.RefUUID == "" && req.RefFQName != nil {
		to = s.byFQName(req.RefType, req.RefFQName)
	}
	if to == nil || to.typ != req.RefType {
		httpErr(w, 404, "ref-update: %s %s not found", req.RefType, req.RefUUID)
		return
	}
	if to == from {
		httpErr(w, 400, "ref-update: a bgp-router cannot peer with itself")
		return
	}
	if req.Operation == "DELETE" {
		delete(from.refs, to.uuid) // deleting a missing ref is not an error in VNC
		reply(map[string]string{"uuid": from.uuid})
		return
	}
	if len(bytes.TrimSpace(req.Attr)) == 0 || string(req.Attr) == "null" {
		httpErr(w, 400, "ref-update: bgp_router_refs need attr (BgpPeeringAttributes)")
		return
	}
	if err := s.checkPeeringAttr(req.Attr); err != nil {
		httpErr(w, 400, "ref-update: %v", err)
		return
	}
	from.refs[to.uuid] = append(json.RawMessage(nil), req.Attr...)
	reply(map[string]string{"uuid": from.uuid})
}
