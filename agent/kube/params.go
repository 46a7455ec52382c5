// Package kube brings up the site's Kubernetes control plane: it checks the host
// (preflight), renders kubeadm's configuration from the site's allocation, runs
// the real kubeadm, and applies manifests with server-side apply.
package kube

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"

	"github.com/tfsite/tfsite/agent/sitename"
)

// KubernetesVersion is the version hack/build-kube.sh builds and kubeadm is told
// to install; it must be listed for the chosen TF release in the support matrix.
const KubernetesVersion = "v1.37.2"

// DefaultCRISocket is containerd's socket, the runtime the appliance ships.
const DefaultCRISocket = "unix:///run/containerd/containerd.sock"

// SiteParams is everything bring-up needs about one site: its allocation (ASN and
// prefixes), what underlay discovery found (address, gateway, interface) and
// which nodes run the TF controller. The agent maps its allocation and discovery
// results onto it; `tfsite render --config F` reads it from YAML.
type SiteParams struct {
	// Site is the site's name: kubeadm's clusterName and part of TF object names.
	Site string `json:"site"`
	// ASN is the site's BGP autonomous system number.
	ASN uint32 `json:"asn"`
	// Pod, Service and Fabric are the site's non-overlapping prefixes.
	Pod     netip.Prefix `json:"pod"`
	Service netip.Prefix `json:"service"`
	Fabric  netip.Prefix `json:"fabric"`
	// AdvertiseAddress is this node's underlay address (kube-apiserver's advertise address).
	AdvertiseAddress netip.Addr `json:"address"`
	// Gateway is the discovered underlay gateway (VROUTER_GATEWAY). Never the master's address.
	Gateway netip.Addr `json:"gateway"`
	// PhysicalInterface is the underlay NIC vhost0 takes over (PHYSICAL_INTERFACE).
	PhysicalInterface string `json:"interface"`
	// ControllerNodes are the TF controller nodes' addresses; default: AdvertiseAddress.
	ControllerNodes []netip.Addr `json:"controllerNodes,omitempty"`
	// NodeName is this node's Kubernetes name; default: the site name.
	NodeName string `json:"nodeName,omitempty"`
	// APIServerPort is kube-apiserver's secure port; default 6443.
	APIServerPort uint16 `json:"apiServerPort,omitempty"`
	// CRISocket is the container runtime's socket; default DefaultCRISocket.
	CRISocket string `json:"criSocket,omitempty"`
	// KubernetesVersion defaults to KubernetesVersion.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// BootstrapToken ("abcdef.0123456789abcdef") lets further nodes join; optional.
	BootstrapToken string `json:"bootstrapToken,omitempty"`
	// TFRegistry and TFTag select the TF container images; defaults DefaultTFRegistry/DefaultTFTag.
	TFRegistry string `json:"tfRegistry,omitempty"`
	TFTag      string `json:"tfTag,omitempty"`
}

// Defaults for the TF images: TF's public registry and its last tagged release.
const (
	DefaultTFRegistry = "docker.io/tungstenfabric"
	DefaultTFTag      = "R21.12"
)

// Validation patterns, compiled on first use: bounded repeats such as {0,127}
// are costly to compile, and every tfsite command would pay at start.
var (
	dnsLabel   = lazyRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	tokenRe    = lazyRegexp(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	ifaceRe    = lazyRegexp(`^[A-Za-z0-9_.:@-]{1,15}$`)
	versionRe  = lazyRegexp(`^v[0-9]+\.[0-9]+\.[0-9]+$`)
	imageTagRe = lazyRegexp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// WithDefaults returns p with empty optional fields filled in.
func (p SiteParams) WithDefaults() SiteParams {
	if p.NodeName == "" {
		p.NodeName = p.Site
	}
	if p.APIServerPort == 0 {
		p.APIServerPort = 6443
	}
	if p.CRISocket == "" {
		p.CRISocket = DefaultCRISocket
	}
	if p.KubernetesVersion == "" {
		p.KubernetesVersion = KubernetesVersion
	}
	if len(p.ControllerNodes) == 0 && p.AdvertiseAddress.IsValid() {
		p.ControllerNodes = []netip.Addr{p.AdvertiseAddress}
	}
	if p.TFRegistry == "" {
		p.TFRegistry = DefaultTFRegistry
	}
	if p.TFTag == "" {
		p.TFTag = DefaultTFTag
	}
	return p
}

// Validate reports every problem at once. Call it on WithDefaults() output.
func (p SiteParams) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !sitename.Valid(p.Site) {
		bad("site %q: must be a DNS label (lower-case letters, digits, '-', at most 63)", p.Site)
	}
	if p.ASN == 0 || p.ASN == 23456 || p.ASN == 65535 || p.ASN == 4294967295 {
		bad("asn %d: must be a usable BGP AS number (not 0, 23456, 65535, 4294967295)", p.ASN)
	}
	prefixes := []struct {
		name string
		p    netip.Prefix
	}{{"pod", p.Pod}, {"service", p.Service}, {"fabric", p.Fabric}}
	for _, x := range prefixes {
		switch {
		case !x.p.IsValid():
			bad("%s prefix: missing (set e.g. %s: 10.32.0.0/16)", x.name, x.name)
		case x.p != x.p.Masked():
			bad("%s prefix %s: host bits set (use %s)", x.name, x.p, x.p.Masked())
		case !x.p.Addr().Is4():
			bad("%s prefix %s: must be IPv4 (TF's kube-manager takes IPv4 subnets)", x.name, x.p)
		}
	}
	for i := range prefixes {
		for j := i + 1; j < len(prefixes); j++ {
			a, b := prefixes[i], prefixes[j]
			if a.p.IsValid() && b.p.IsValid() && a.p.Overlaps(b.p) {
				bad("%s prefix %s overlaps %s prefix %s: they must be disjoint", a.name, a.p, b.name, b.p)
			}
		}
	}
	if p.Service.IsValid() && p.Service.Addr().Is4() && p.Service.Bits() < 12 {
		bad("service prefix %s: kube-apiserver accepts at most /12 for IPv4 (use a longer prefix)", p.Service)
	}
	if !p.AdvertiseAddress.IsValid() || !p.AdvertiseAddress.Is4() || p.AdvertiseAddress.IsUnspecified() {
		bad("address %v: need this node's IPv4 underlay address", p.AdvertiseAddress)
	}
	if !p.Gateway.IsValid() || !p.Gateway.Is4() || p.Gateway.IsUnspecified() {
		bad("gateway %v: need the discovered IPv4 underlay gateway", p.Gateway)
	} else {
		if p.Gateway == p.AdvertiseAddress {
			bad("gateway %s equals this node's address: VROUTER_GATEWAY must be the underlay gateway, not the master", p.Gateway)
		}
		for _, c := range p.ControllerNodes {
			if c == p.Gateway {
				bad("gateway %s is a controller node: VROUTER_GATEWAY must be the underlay gateway, not the master", p.Gateway)
			}
		}
	}
	for _, x := range prefixes {
		if x.p.IsValid() && p.AdvertiseAddress.IsValid() && x.p.Contains(p.AdvertiseAddress) {
			bad("address %s lies inside the %s prefix %s: allocation and underlay overlap", p.AdvertiseAddress, x.name, x.p)
		}
	}
	if !ifaceRe().MatchString(p.PhysicalInterface) {
		bad("interface %q: need the underlay NIC name (e.g. eth0)", p.PhysicalInterface)
	}
	for _, c := range p.ControllerNodes {
		if !c.IsValid() || !c.Is4() {
			bad("controllerNodes: %v is not an IPv4 address", c)
		}
	}
	if !dnsLabel().MatchString(p.NodeName) {
		bad("nodeName %q: must be a DNS label", p.NodeName)
	}
	if p.APIServerPort == 0 {
		bad("apiServerPort: must not be 0")
	}
	if !strings.HasPrefix(p.CRISocket, "unix:///") {
		bad("criSocket %q: must be a unix:/// URL", p.CRISocket)
	}
	if !versionRe().MatchString(p.KubernetesVersion) {
		bad("kubernetesVersion %q: must look like v1.37.2", p.KubernetesVersion)
	}
	if p.BootstrapToken != "" && !tokenRe().MatchString(p.BootstrapToken) {
		bad("bootstrapToken: must match [a-z0-9]{6}.[a-z0-9]{16}")
	}
	if p.TFRegistry == "" || strings.ContainsAny(p.TFRegistry, " \t\n@") || strings.HasSuffix(p.TFRegistry, "/") {
		bad("tfRegistry %q: must be a registry path like docker.io/tungstenfabric (no spaces, '@', trailing '/')", p.TFRegistry)
	}
	if !imageTagRe().MatchString(p.TFTag) {
		bad("tfTag %q: must be an image tag like R21.12", p.TFTag)
	}
	return errors.Join(errs...)
}

// DecodeSiteParams decodes YAML or JSON strictly (unknown keys are errors)
// without defaulting or validating (callers may still override fields).
func DecodeSiteParams(data []byte) (SiteParams, error) {
	var p SiteParams
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return SiteParams{}, fmt.Errorf("decoding site parameters: %w", err)
	}
	return p, nil
}

// ParseSiteParams decodes strictly, fills defaults and validates.
func ParseSiteParams(data []byte) (SiteParams, error) {
	p, err := DecodeSiteParams(data)
	if err != nil {
		return SiteParams{}, err
	}
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return SiteParams{}, fmt.Errorf("invalid site parameters: %w", err)
	}
	return p, nil
}

// APIServerURL is the URL other components (TF's kube-manager) use to reach kube-apiserver.
func (p SiteParams) APIServerURL() string {
	return "https://" + netip.AddrPortFrom(p.AdvertiseAddress, p.APIServerPort).String()
}
