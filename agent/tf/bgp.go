package tf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/sitename"
)

// Schema names of the objects the peering touches (tf-api-client schema).
const (
	typeBGPRouter = "bgp-router"
	typeGSC       = "global-system-config"
	typeRI        = "routing-instance"
)

// IPFabricRI is the routing instance every bgp-router lives under.
var IPFabricRI = []string{"default-domain", "default-project", "ip-fabric", "__default__"}

// GlobalSystemConfig is the fq_name of the object carrying the cluster ASN.
var GlobalSystemConfig = []string{"default-global-system-config"}

// DefaultFamilies are the address families provision_control.py gives control nodes.
var DefaultFamilies = []string{"route-target", "inet-vpn", "e-vpn", "erm-vpn", "inet6-vpn"}

// PeerPrefix starts the name of every bgp-router tfsite creates; only those are
// ever deleted.
const PeerPrefix = "tfsite-"

// ErrLocalRouterMissing means the local control node's bgp-router does not exist
// yet (TF's provisioner has not run); reconcile again later.
var ErrLocalRouterMissing = errors.New("local control node not registered in TF config yet")

// AddressFamilies is the schema's AddressFamilies type.
type AddressFamilies struct {
	Family []string `json:"family"`
}

// BGPRouterParams is the schema's BgpRouterParams, reduced to what tfsite sets
// and compares (the server keeps other fields).
type BGPRouterParams struct {
	AutonomousSystem uint32          `json:"autonomous_system"`
	Identifier       string          `json:"identifier"`
	Address          string          `json:"address"`
	Port             int             `json:"port,omitempty"`
	HoldTime         int             `json:"hold_time,omitempty"`
	Vendor           string          `json:"vendor,omitempty"`
	RouterType       string          `json:"router_type,omitempty"`
	AddressFamilies  AddressFamilies `json:"address_families"`
	AdminDown        bool            `json:"admin_down,omitempty"`
}

// Ref is a reference with its attribute, as the API returns it.
type Ref struct {
	To   []string        `json:"to"`
	UUID string          `json:"uuid"`
	Attr json.RawMessage `json:"attr,omitempty"`
}

// BGPRouter is a bgp-router as read from the API.
type BGPRouter struct {
	UUID       string          `json:"uuid"`
	FQName     []string        `json:"fq_name"`
	ParentType string          `json:"parent_type,omitempty"`
	Params     BGPRouterParams `json:"bgp_router_parameters"`
	Refs       []Ref           `json:"bgp_router_refs,omitempty"`
}

// Name is the last fq_name element.
func (r BGPRouter) Name() string {
	if len(r.FQName) == 0 {
		return ""
	}
	return r.FQName[len(r.FQName)-1]
}

// BgpPeeringAttributes / BgpSession / BgpSessionAttributes of the schema.
type sessionAttributes struct {
	AddressFamilies AddressFamilies `json:"address_families"`
}
type session struct {
	Attributes []sessionAttributes `json:"attributes"`
}
type peeringAttributes struct {
	Session []session `json:"session"`
}

func peeringAttr(families []string) peeringAttributes {
	return peeringAttributes{Session: []session{{Attributes: []sessionAttributes{{AddressFamilies: AddressFamilies{Family: families}}}}}}
}

// refFamilies extracts the families of a bgp_router_refs attribute (nil if malformed).
func refFamilies(raw json.RawMessage) []string {
	var a peeringAttributes
	if json.Unmarshal(raw, &a) != nil || len(a.Session) != 1 || len(a.Session[0].Attributes) != 1 {
		return nil
	}
	return a.Session[0].Attributes[0].AddressFamilies.Family
}

// Compiled on first use, not at every tfsite start.

// PeeringConfig configures the reconciler.
type PeeringConfig struct {
	// Endpoint of the local config API, e.g. http://10.0.0.1:8082.
	Endpoint string
	// LocalRouter is the name of the local control node's bgp-router (its hostname).
	LocalRouter string
	// ASN is this site's ASN (global-system-config autonomous_system).
	ASN uint32
	// Families for sessions and peers; default DefaultFamilies.
	Families []string
	// RouterType of remote peers: "external-control-node" (default) or "router".
	// Never a contrail-vendor control-node: those are forced to the local ASN.
	RouterType string
	// Vendor of remote peers; default "tfsite". Must not be "contrail".
	Vendor string
	// HoldTime in seconds (0 = TF's default 90).
	HoldTime int
	// Interval between level-triggered reconciles in Run; default 30s.
	Interval time.Duration
}

// DefaultPeeringConfig returns the defaults; Endpoint, LocalRouter and ASN must be set.
func DefaultPeeringConfig() PeeringConfig {
	return PeeringConfig{
		Families:   slices.Clone(DefaultFamilies),
		RouterType: "external-control-node",
		Vendor:     "tfsite",
		Interval:   30 * time.Second,
	}
}

// Validate reports every problem at once.
func (c PeeringConfig) Validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("endpoint: set the TF config API URL, e.g. http://10.0.0.1:8082"))
	}
	if c.LocalRouter == "" {
		errs = append(errs, errors.New("localRouter: set the local control node's bgp-router name (its hostname)"))
	}
	if c.ASN == 0 {
		errs = append(errs, errors.New("asn: set the site's ASN"))
	}
	if len(c.Families) == 0 {
		errs = append(errs, errors.New("families: need at least one address family (default route-target, inet-vpn, ...)"))
	}
	if c.RouterType != "external-control-node" && c.RouterType != "router" {
		errs = append(errs, fmt.Errorf("routerType %q: use external-control-node or router (contrail control-nodes are forced to the local ASN)", c.RouterType))
	}
	if c.Vendor == "" || strings.EqualFold(c.Vendor, "contrail") {
		errs = append(errs, fmt.Errorf("vendor %q: must be set and not contrail (TF forces contrail routers to the local ASN)", c.Vendor))
	}
	if c.HoldTime < 0 || c.HoldTime > 65535 {
		errs = append(errs, fmt.Errorf("holdTime %d: must be 0..65535", c.HoldTime))
	}
	if c.Interval <= 0 {
		errs = append(errs, errors.New("interval: must be positive"))
	}
	return errors.Join(errs...)
}

// Changes summarises what one reconcile wrote.
type Changes struct {
	ASNSet                    bool
	Created, Updated, Deleted []string
	Linked, Unlinked          []string
}

// Empty reports whether the reconcile wrote nothing.
func (c Changes) Empty() bool {
	return !c.ASNSet && len(c.Created)+len(c.Updated)+len(c.Deleted)+len(c.Linked)+len(c.Unlinked) == 0
}

// PeerSource yields the desired peers (every other site) at each reconcile.
type PeerSource func() []site.BGPPeer

// Peering keeps TF's BGP configuration in line with the sites that exist.
type Peering struct {
	cfg    PeeringConfig
	vnc    *VNC
	log    *slog.Logger
	source PeerSource
	wake   chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

// NewPeering validates cfg. source may be nil when only Reconcile is called.
func NewPeering(cfg PeeringConfig, source PeerSource, hc *http.Client, log *slog.Logger) (*Peering, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("peering config: %w", err)
	}
	vnc, err := NewVNC(cfg.Endpoint, hc)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Peering{cfg: cfg, vnc: vnc, log: log, source: source, wake: make(chan struct{}, 1), closed: make(chan struct{})}, nil
}

// Wake asks Run to reconcile now (e.g. on a membership change).
func (p *Peering) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Close stops Run; safe to call twice.
func (p *Peering) Close() { p.closeOnce.Do(func() { close(p.closed) }) }

// Run reconciles on every wake-up and every Interval until ctx is done or Close.
func (p *Peering) Run(ctx context.Context) error {
	if p.source == nil {
		return errors.New("peering: Run needs a PeerSource")
	}
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		ch, err := p.Reconcile(ctx, p.source())
		switch {
		case err != nil:
			p.log.Warn("BGP peering reconcile failed; retrying", "err", err)
		case !ch.Empty():
			p.log.Info("BGP peering converged", "created", ch.Created, "updated", ch.Updated,
				"deleted", ch.Deleted, "linked", ch.Linked, "unlinked", ch.Unlinked, "asnSet", ch.ASNSet)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.closed:
			return nil
		case <-p.wake:
		case <-t.C:
		}
	}
}

// PeerName is the bgp-router name tfsite gives a site's control node.
func PeerName(site string) string { return PeerPrefix + site }

func (p *Peering) desired(peer site.BGPPeer) BGPRouterParams {
	return BGPRouterParams{
		AutonomousSystem: peer.ASN,
		Identifier:       peer.Address.String(), // a site's underlay address is its BGP identifier
		Address:          peer.Address.String(),
		Port:             BGPPort,
		HoldTime:         p.cfg.HoldTime,
		Vendor:           p.cfg.Vendor,
		RouterType:       p.cfg.RouterType,
		AddressFamilies:  AddressFamilies{Family: slices.Clone(p.cfg.Families)},
	}
}

func sameParams(a, b BGPRouterParams) bool {
	return a.AutonomousSystem == b.AutonomousSystem && a.Identifier == b.Identifier && a.Address == b.Address &&
		a.Port == b.Port && a.HoldTime == b.HoldTime && a.Vendor == b.Vendor && a.RouterType == b.RouterType &&
		a.AdminDown == b.AdminDown && slices.Equal(a.AddressFamilies.Family, b.AddressFamilies.Family)
}

func checkPeers(peers []site.BGPPeer) error {
	var errs []error
	seen := map[string]bool{}
	for _, pr := range peers {
		switch {
		case !sitename.Valid(pr.Site) || len(PeerName(pr.Site)) > 63:
			errs = append(errs, fmt.Errorf("peer site %q: must be a DNS label", pr.Site))
		case seen[pr.Site]:
			errs = append(errs, fmt.Errorf("peer site %q listed twice", pr.Site))
		}
		seen[pr.Site] = true
		if !pr.Address.IsValid() || pr.Address.IsUnspecified() {
			errs = append(errs, fmt.Errorf("peer %s: address missing", pr.Site))
		}
		if pr.Address.IsValid() && !pr.Address.Is4() {
			errs = append(errs, fmt.Errorf("peer %s: address %s must be IPv4: it is also the BGP identifier", pr.Site, pr.Address))
		}
		if pr.ASN == 0 {
			errs = append(errs, fmt.Errorf("peer %s: ASN missing", pr.Site))
		}
	}
	// Peers may share the local ASN (iBGP between sites): allowed, not checked.
	return errors.Join(errs...)
}

// Reconcile converges TF's config on peers: the cluster ASN, one bgp-router per
// peer and a reference from the local control node to each; tfsite's routers of
// sites no longer listed are unlinked and deleted. A second call with the same
// peers writes nothing.
func (p *Peering) Reconcile(ctx context.Context, peers []site.BGPPeer) (Changes, error) {
	var ch Changes
	if err := checkPeers(peers); err != nil {
		return ch, fmt.Errorf("desired peers: %w", err)
	}
	if err := p.reconcileASN(ctx, &ch); err != nil {
		return ch, err
	}
	riUUID, err := p.vnc.FQNameToID(ctx, typeRI, IPFabricRI)
	if err != nil {
		return ch, err
	}
	routers := map[string]BGPRouter{}
	err = p.vnc.List(ctx, typeBGPRouter, riUUID, func(raw json.RawMessage) error {
		var r BGPRouter
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decoding bgp-router: %w", err)
		}
		routers[r.Name()] = r
		return nil
	})
	if err != nil {
		return ch, fmt.Errorf("listing bgp-routers: %w", err)
	}
	localSummary, ok := routers[p.cfg.LocalRouter]
	if !ok {
		return ch, fmt.Errorf("%w: no bgp-router %q under %s", ErrLocalRouterMissing, p.cfg.LocalRouter, strings.Join(IPFabricRI, ":"))
	}
	var local BGPRouter // re-read in full: refs with attributes
	if err := p.vnc.Get(ctx, typeBGPRouter, localSummary.UUID, &local); err != nil {
		return ch, fmt.Errorf("reading local bgp-router: %w", err)
	}
	linked := map[string]Ref{}
	for _, r := range local.Refs {
		linked[r.UUID] = r
	}

	want := map[string]bool{}
	peers = slices.Clone(peers)
	sort.Slice(peers, func(i, j int) bool { return peers[i].Site < peers[j].Site })
	var errs []error
	for _, peer := range peers {
		name := PeerName(peer.Site)
		want[name] = true
		params := p.desired(peer)
		cur, exists := routers[name]
		uuid := cur.UUID
		switch {
		case !exists:
			uuid, err = p.vnc.Create(ctx, typeBGPRouter, map[string]any{
				"fq_name":               append(slices.Clone(IPFabricRI), name),
				"parent_type":           typeRI,
				"bgp_router_parameters": params,
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("creating bgp-router %s: %w", name, err))
				continue
			}
			ch.Created = append(ch.Created, name)
		case !sameParams(cur.Params, params):
			if err := p.vnc.Update(ctx, typeBGPRouter, uuid, map[string]any{"bgp_router_parameters": params}); err != nil {
				errs = append(errs, fmt.Errorf("updating bgp-router %s: %w", name, err))
				continue
			}
			ch.Updated = append(ch.Updated, name)
		}
		if ref, ok := linked[uuid]; ok && slices.Equal(refFamilies(ref.Attr), p.cfg.Families) {
			continue
		}
		if err := p.vnc.RefUpdate(ctx, typeBGPRouter, local.UUID, typeBGPRouter, uuid, true, peeringAttr(p.cfg.Families)); err != nil {
			errs = append(errs, fmt.Errorf("linking %s to %s: %w", p.cfg.LocalRouter, name, err))
			continue
		}
		ch.Linked = append(ch.Linked, name)
	}
	names := make([]string, 0, len(routers))
	for n := range routers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		r := routers[name]
		if !strings.HasPrefix(name, PeerPrefix) || want[name] || name == p.cfg.LocalRouter {
			continue
		}
		if _, ok := linked[r.UUID]; ok {
			if err := p.vnc.RefUpdate(ctx, typeBGPRouter, local.UUID, typeBGPRouter, r.UUID, false, nil); err != nil {
				errs = append(errs, fmt.Errorf("unlinking %s: %w", name, err))
				continue
			}
			ch.Unlinked = append(ch.Unlinked, name)
		}
		if err := p.vnc.Delete(ctx, typeBGPRouter, r.UUID); err != nil {
			errs = append(errs, fmt.Errorf("deleting bgp-router %s of a released site: %w", name, err))
			continue
		}
		ch.Deleted = append(ch.Deleted, name)
	}
	return ch, errors.Join(errs...)
}

func (p *Peering) reconcileASN(ctx context.Context, ch *Changes) error {
	uuid, err := p.vnc.FQNameToID(ctx, typeGSC, GlobalSystemConfig)
	if err != nil {
		return err
	}
	var gsc struct {
		AutonomousSystem uint32 `json:"autonomous_system"`
		Enable4ByteAS    bool   `json:"enable_4byte_as"`
	}
	if err := p.vnc.Get(ctx, typeGSC, uuid, &gsc); err != nil {
		return fmt.Errorf("reading global-system-config: %w", err)
	}
	four := p.cfg.ASN > 65535
	if gsc.AutonomousSystem == p.cfg.ASN && (gsc.Enable4ByteAS || !four) {
		return nil
	}
	fields := map[string]any{"autonomous_system": p.cfg.ASN}
	if four {
		fields["enable_4byte_as"] = true
	}
	if err := p.vnc.Update(ctx, typeGSC, uuid, fields); err != nil {
		return fmt.Errorf("setting the cluster ASN to %d: %w", p.cfg.ASN, err)
	}
	ch.ASNSet = true
	return nil
}
