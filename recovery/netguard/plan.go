package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/probe"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// Plan is a guarded network change as written in a plan file
// (docs/network-plan.md): operations applied in order, and the probes that
// decide whether the result is healthy.
type Plan struct {
	Description string      `json:"description,omitempty"`
	Operations  []Operation `json:"operations"`
	Probes      Probes      `json:"probes,omitzero"`
}

// Operation is one step of a plan. Op selects which other fields apply.
type Operation struct {
	Op          string   `json:"op"`
	Link        string   `json:"link,omitempty"`
	Target      string   `json:"target,omitempty"`
	Master      *string  `json:"master,omitempty"`
	Kind        string   `json:"kind,omitempty"`
	Peer        string   `json:"peer,omitempty"`
	Address     string   `json:"address,omitempty"`
	Addresses   []string `json:"addresses,omitempty"`
	Destination string   `json:"destination,omitempty"`
	Gateway     string   `json:"gateway,omitempty"`
	Table       uint32   `json:"table,omitempty"`
	Metric      uint32   `json:"metric,omitempty"`
	MTU         uint32   `json:"mtu,omitempty"`
}

// Probes says what must answer for the changed network to count as healthy.
type Probes struct {
	// Gateway is "auto" (the IPv4 default gateway after the change; the
	// default), "none", or an address. It must answer ARP and ICMP echo.
	Gateway string `json:"gateway,omitempty"`
	// Targets must answer: "icmp:ADDR" (echo) or "tcp:ADDR:PORT" (connect).
	Targets []string `json:"targets,omitempty"`
}

// Operation names.
const (
	OpSetAddresses       = "set-addresses"
	OpAddAddress         = "add-address"
	OpDelAddress         = "del-address"
	OpMoveAddresses      = "move-addresses"
	OpReplaceDefaultGW   = "replace-default-route"
	OpAddRoute           = "add-route"
	OpDelRoute           = "del-route"
	OpSetMTU             = "set-mtu"
	OpLinkUp             = "link-up"
	OpLinkDown           = "link-down"
	OpAddLink            = "add-link"
	OpDelLink            = "del-link"
	OpSetMaster          = "set-master"
	defaultGatewayProbe  = "auto"
	maxPlanOps           = 256
	maxInterfaceNameSize = 15
)

// ErrInvalidPlan is wrapped by every plan decoding and validation error.
var ErrInvalidPlan = errors.New("invalid network plan")

// DecodePlan parses a YAML (or JSON) plan strictly: unknown fields, unknown
// operations and fields an operation does not take are errors. It checks
// everything that does not depend on the host; Validate checks the rest.
func DecodePlan(data []byte) (*Plan, error) {
	if len(data) > MaxPlanFile {
		return nil, fmt.Errorf("%w: plan is %d bytes, larger than %s, the limit", ErrInvalidPlan, len(data), readlimit.Size(MaxPlanFile))
	}
	var p Plan
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidPlan, oneline.Of(err.Error()))
	}
	// The description is checked here, not in check: a pending record
	// written before the limit must still decode, so it can be reverted.
	errs := checkDescription(p.Description)
	errs = append(errs, p.problems()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPlan, joinOneLine(errs))
	}
	return &p, nil
}

// check validates the plan's syntax, reporting every problem at once.
func (p *Plan) check() error {
	if errs := p.problems(); len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidPlan, joinOneLine(errs))
	}
	return nil
}

// problems lists every syntax problem of the plan.
func (p *Plan) problems() []error {
	var errs []error
	bad := func(i int, format string, a ...any) {
		errs = append(errs, fmt.Errorf("operation %d: "+format, append([]any{i + 1}, a...)...))
	}
	if len(p.Operations) == 0 {
		errs = append(errs, errors.New("no operations: add at least one under `operations`"))
	}
	if len(p.Operations) > maxPlanOps {
		errs = append(errs, fmt.Errorf("%d operations: at most %d", len(p.Operations), maxPlanOps))
	}
	for i, op := range p.Operations {
		_, opErrs := compile(op)
		for _, err := range opErrs {
			bad(i, "%v", err)
		}
	}
	return append(errs, p.Probes.check()...)
}

func (pr Probes) check() []error {
	var errs []error
	if g := pr.Gateway; g != "" && g != defaultGatewayProbe && g != "none" {
		if _, err := netip.ParseAddr(g); err != nil {
			errs = append(errs, fmt.Errorf("probes.gateway %q: want auto, none or an IP address", g))
		}
	}
	for _, t := range pr.Targets {
		if _, err := probe.Parse(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// joinOneLine joins errors with "; " so a report stays one line.
func joinOneLine(errs []error) error {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return errors.New(strings.Join(parts, "; "))
}

// Protected is an address the plan must leave in place on its link, with the
// link up and not enslaved: the out-of-band management address.
type Protected struct {
	Link    string
	Address netip.Prefix
}

// Validate checks the plan against the host state it would be applied to,
// by applying it to a copy of that state: every link, address and route it
// names must exist when its operation runs, it may only delete links it
// created, and it must never take a protected address away. It returns the
// state the plan should produce (kernel-made routes aside) and reports every
// problem at once.
func (p *Plan) Validate(s *State, protected []Protected) (*State, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	sim := s.Clone()
	created := map[string]bool{}
	broken := make([]bool, len(protected))
	var errs []error
	for i, op := range p.Operations {
		st, _ := compile(op) // check passed
		var err error
		if d, ok := st.(delLink); ok && !created[d.link] {
			if _, exists := sim.Link(d.link); exists {
				err = fmt.Errorf("link %s was not added by this plan; a revert could not recreate it", d.link)
			}
		}
		if err == nil {
			err = st.simulate(sim)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("operation %d (%s): %w", i+1, op.Op, err))
			continue
		}
		if a, ok := st.(addLink); ok {
			for _, name := range a.names() {
				created[name] = true
			}
		}
		for j, pr := range protected {
			if broken[j] {
				continue // reported at the operation that broke it
			}
			if err := checkProtected(sim, pr); err != nil {
				broken[j] = true
				errs = append(errs, fmt.Errorf("operation %d (%s) would %v; management access is kept out of plans (recovery/oob)", i+1, op.Op, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPlan, joinOneLine(errs))
	}
	return sim, nil
}

func checkProtected(s *State, pr Protected) error {
	l, ok := s.Link(pr.Link)
	if !ok {
		return fmt.Errorf("remove management link %s", pr.Link)
	}
	if !l.Up {
		return fmt.Errorf("take management link %s down", pr.Link)
	}
	if l.Master != "" {
		return fmt.Errorf("enslave management link %s to %s", pr.Link, l.Master)
	}
	for _, a := range s.AddressesOn(pr.Link) {
		if a.Address == pr.Address {
			return nil
		}
	}
	return fmt.Errorf("remove management address %s from %s", pr.Address, pr.Link)
}

// CreatedLinks lists the links the plan adds (veth peers included): a revert deletes them.
func (p *Plan) CreatedLinks() []string {
	var out []string
	for _, op := range p.Operations {
		if op.Op == OpAddLink {
			out = append(out, op.Link)
			if op.Peer != "" {
				out = append(out, op.Peer)
			}
		}
	}
	return out
}

// Duration is a time.Duration that reads and writes as "10s" in JSON.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		if n, err2 := strconv.ParseInt(string(b), 10, 64); err2 == nil {
			*d = Duration(n)
			return nil
		}
		return err
	}
	*d = Duration(v)
	return nil
}
