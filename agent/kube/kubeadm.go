package kube

import (
	"bytes"
	"fmt"
	"net/netip"

	"sigs.k8s.io/yaml"
)

// kubeadm's v1beta4 configuration, reduced to the fields tfsite sets. kubeadm's
// own types live in k8s.io/kubernetes, which is not importable as a library; these
// mirror their JSON names (kubeadm config validate checks them strictly in tests).

const kubeadmAPIVersion = "kubeadm.k8s.io/v1beta4"

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// Arg is a v1beta4 extra argument (v1beta4 made extraArgs an ordered list).
type Arg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// BootstrapToken is a kubeadm bootstrap token for joining nodes.
type BootstrapToken struct {
	Token  string   `json:"token"`
	TTL    string   `json:"ttl,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Usages []string `json:"usages,omitempty"`
}

// APIEndpoint is where a control-plane node's kube-apiserver listens.
type APIEndpoint struct {
	AdvertiseAddress string `json:"advertiseAddress"`
	BindPort         int32  `json:"bindPort"`
}

// Taint mirrors core/v1 Taint.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// NodeRegistration is how the node registers with the cluster.
type NodeRegistration struct {
	Name             string  `json:"name"`
	CRISocket        string  `json:"criSocket"`
	Taints           []Taint `json:"taints"`
	KubeletExtraArgs []Arg   `json:"kubeletExtraArgs,omitempty"`
	// ImagePullPolicy IfNotPresent: images imported from the appliance's
	// archive are used as they are; with a registry, missing ones are pulled.
	ImagePullPolicy       string   `json:"imagePullPolicy,omitempty"`
	IgnorePreflightErrors []string `json:"ignorePreflightErrors,omitempty"`
}

// InitConfiguration is kubeadm init's node-local configuration.
type InitConfiguration struct {
	typeMeta         `json:",inline"`
	BootstrapTokens  []BootstrapToken `json:"bootstrapTokens,omitempty"`
	NodeRegistration NodeRegistration `json:"nodeRegistration"`
	LocalAPIEndpoint APIEndpoint      `json:"localAPIEndpoint"`
	Timeouts         *Timeouts        `json:"timeouts,omitempty"`
}

// Timeouts are v1beta4's waits (Go durations as strings). kubeadm's defaults
// (4 minutes for the control plane and kubelet, 1 for API calls) are short for
// a small VM or a slow disk: init's static pods start in 2-3 minutes under
// emulation, and kubeadm's first API call (the admin ClusterRoleBinding, at the
// start of wait-control-plane) retries only for KubernetesAPICall.
type Timeouts struct {
	ControlPlaneComponentHealthCheck string `json:"controlPlaneComponentHealthCheck,omitempty"`
	KubeletHealthCheck               string `json:"kubeletHealthCheck,omitempty"`
	KubernetesAPICall                string `json:"kubernetesAPICall,omitempty"`
}

// initTimeouts are tfsite's init timeouts.
var initTimeouts = Timeouts{ControlPlaneComponentHealthCheck: "15m0s", KubeletHealthCheck: "10m0s", KubernetesAPICall: "10m0s"}

// Networking holds the cluster's prefixes.
type Networking struct {
	ServiceSubnet string `json:"serviceSubnet"`
	PodSubnet     string `json:"podSubnet"`
	DNSDomain     string `json:"dnsDomain"`
}

// ControlPlaneComponent carries extra flags for one component.
type ControlPlaneComponent struct {
	ExtraArgs []Arg `json:"extraArgs,omitempty"`
}

// APIServer is kube-apiserver's part of ClusterConfiguration.
type APIServer struct {
	ControlPlaneComponent `json:",inline"`
	CertSANs              []string `json:"certSANs,omitempty"`
}

// ClusterConfiguration is the cluster-wide kubeadm configuration.
type ClusterConfiguration struct {
	typeMeta             `json:",inline"`
	ClusterName          string                `json:"clusterName"`
	KubernetesVersion    string                `json:"kubernetesVersion"`
	ControlPlaneEndpoint string                `json:"controlPlaneEndpoint"`
	Networking           Networking            `json:"networking"`
	APIServer            APIServer             `json:"apiServer"`
	ControllerManager    ControlPlaneComponent `json:"controllerManager"`
}

// KubeProxyConfiguration is the one kube-proxy setting tfsite decides: nftables mode, because the
// control-plane images are built here without a distribution and the kube-proxy image carries nft
// (not the iptables tool family); nftables mode is GA since Kubernetes 1.33. ClusterCIDR repeats the
// site's pod prefix so kube-proxy tells pod traffic from outside traffic by the allocation.
type KubeProxyConfiguration struct {
	typeMeta    `json:",inline"`
	Mode        string `json:"mode"`
	ClusterCIDR string `json:"clusterCIDR"`
}

// BootstrapTokenDiscovery tells a joining node how to find and trust the cluster.
type BootstrapTokenDiscovery struct {
	Token                    string   `json:"token"`
	APIServerEndpoint        string   `json:"apiServerEndpoint"`
	CACertHashes             []string `json:"caCertHashes,omitempty"`
	UnsafeSkipCAVerification bool     `json:"unsafeSkipCAVerification,omitempty"`
}

// Discovery is JoinConfiguration's discovery section.
type Discovery struct {
	BootstrapToken *BootstrapTokenDiscovery `json:"bootstrapToken"`
}

// JoinControlPlane makes a joining node a further control-plane node.
type JoinControlPlane struct {
	LocalAPIEndpoint APIEndpoint `json:"localAPIEndpoint"`
	CertificateKey   string      `json:"certificateKey,omitempty"`
}

// JoinConfiguration is kubeadm join's configuration.
type JoinConfiguration struct {
	typeMeta         `json:",inline"`
	NodeRegistration NodeRegistration  `json:"nodeRegistration"`
	Discovery        Discovery         `json:"discovery"`
	ControlPlane     *JoinControlPlane `json:"controlPlane,omitempty"`
}

// InitConfigs builds the InitConfiguration and ClusterConfiguration for a site's
// first control-plane node. p must have passed WithDefaults and Validate.
func InitConfigs(p SiteParams) (InitConfiguration, ClusterConfiguration) {
	addr := p.AdvertiseAddress.String()
	endpoint := netip.AddrPortFrom(p.AdvertiseAddress, p.APIServerPort).String()
	init := InitConfiguration{
		typeMeta: typeMeta{APIVersion: kubeadmAPIVersion, Kind: "InitConfiguration"},
		NodeRegistration: NodeRegistration{
			Name:      p.NodeName,
			CRISocket: p.CRISocket,
			// A site is often one node: let TF's DaemonSets and workloads run on the
			// control plane. An empty list (not nil) tells kubeadm "no taints".
			Taints:           []Taint{},
			KubeletExtraArgs: []Arg{{Name: "node-ip", Value: addr}},
			ImagePullPolicy:  "IfNotPresent",
		},
		LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: addr, BindPort: int32(p.APIServerPort)},
		Timeouts:         &initTimeouts,
	}
	if p.BootstrapToken != "" {
		init.BootstrapTokens = []BootstrapToken{{
			Token:  p.BootstrapToken,
			TTL:    "24h0m0s",
			Groups: []string{"system:bootstrappers:kubeadm:default-node-token"},
			Usages: []string{"signing", "authentication"},
		}}
	}
	cluster := ClusterConfiguration{
		typeMeta:             typeMeta{APIVersion: kubeadmAPIVersion, Kind: "ClusterConfiguration"},
		ClusterName:          p.Site,
		KubernetesVersion:    p.KubernetesVersion,
		ControlPlaneEndpoint: endpoint,
		Networking: Networking{
			PodSubnet:     p.Pod.String(),
			ServiceSubnet: p.Service.String(),
			DNSDomain:     "cluster.local",
		},
		APIServer: APIServer{CertSANs: []string{addr}},
		// kubeadm derives --allocate-node-cidrs/--cluster-cidr (controller-manager)
		// and --service-cluster-ip-range (apiserver) from Networking.
	}
	return init, cluster
}

// JoinParams says how a further node joins a site.
type JoinParams struct {
	// Endpoint is the site's control-plane endpoint (address:port).
	Endpoint netip.AddrPort
	// Token is the bootstrap token; CACertHash is "sha256:<hex>" of the cluster CA's public key.
	Token      string
	CACertHash string
	// ControlPlane makes the node a further control-plane node; CertificateKey decrypts the uploaded certs.
	ControlPlane   bool
	CertificateKey string
}

// JoinConfig builds the JoinConfiguration for a further node described by p
// (its NodeName, AdvertiseAddress, CRISocket).
func JoinConfig(p SiteParams, j JoinParams) (JoinConfiguration, error) {
	if !j.Endpoint.IsValid() {
		return JoinConfiguration{}, fmt.Errorf("join: endpoint missing (the site's control plane address:port)")
	}
	if !tokenRe().MatchString(j.Token) {
		return JoinConfiguration{}, fmt.Errorf("join: token must match [a-z0-9]{6}.[a-z0-9]{16}")
	}
	if len(j.CACertHash) != len("sha256:")+64 || j.CACertHash[:7] != "sha256:" {
		return JoinConfiguration{}, fmt.Errorf("join: caCertHash must be sha256:<64 hex> (kubeadm init prints it)")
	}
	addr := p.AdvertiseAddress.String()
	jc := JoinConfiguration{
		typeMeta: typeMeta{APIVersion: kubeadmAPIVersion, Kind: "JoinConfiguration"},
		NodeRegistration: NodeRegistration{
			Name:             p.NodeName,
			CRISocket:        p.CRISocket,
			Taints:           []Taint{},
			KubeletExtraArgs: []Arg{{Name: "node-ip", Value: addr}},
		},
		Discovery: Discovery{BootstrapToken: &BootstrapTokenDiscovery{
			Token:             j.Token,
			APIServerEndpoint: j.Endpoint.String(),
			CACertHashes:      []string{j.CACertHash},
		}},
	}
	if j.ControlPlane {
		jc.ControlPlane = &JoinControlPlane{
			LocalAPIEndpoint: APIEndpoint{AdvertiseAddress: addr, BindPort: int32(p.APIServerPort)},
			CertificateKey:   j.CertificateKey,
		}
	}
	return jc, nil
}

// RenderInit renders kubeadm.yaml for `kubeadm init --config`: the
// InitConfiguration, ClusterConfiguration and KubeProxyConfiguration as three YAML documents.
func RenderInit(p SiteParams) ([]byte, error) {
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("rendering kubeadm config: %w", err)
	}
	init, cluster := InitConfigs(p)
	proxy := KubeProxyConfiguration{
		typeMeta:    typeMeta{APIVersion: "kubeproxy.config.k8s.io/v1alpha1", Kind: "KubeProxyConfiguration"},
		Mode:        "nftables",
		ClusterCIDR: p.Pod.String(),
	}
	return joinDocs(init, cluster, proxy)
}

// RenderJoin renders the JoinConfiguration for `kubeadm join --config`.
func RenderJoin(p SiteParams, j JoinParams) ([]byte, error) {
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("rendering kubeadm join config: %w", err)
	}
	jc, err := JoinConfig(p, j)
	if err != nil {
		return nil, err
	}
	return joinDocs(jc)
}

func joinDocs(docs ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Rendered by tfsite from the site's allocation; do not edit (re-render instead).\n")
	for i, d := range docs {
		out, err := yaml.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("encoding kubeadm document %d: %w", i, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(out)
		if !bytes.HasSuffix(out, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}
