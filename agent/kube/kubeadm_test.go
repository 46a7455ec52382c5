package kube

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"

	"github.com/tfsite/tfsite/internal/testrig"
)

func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			out = append(out, d)
		}
	}
	return out
}

func TestRenderInit(t *testing.T) {
	p := testParams()
	out, err := RenderInit(p)
	if err != nil {
		t.Fatal(err)
	}
	docs := splitDocs(out)
	if len(docs) != 3 {
		t.Fatalf("want 3 documents, got %d:\n%s", len(docs), out)
	}
	var init InitConfiguration
	var cluster ClusterConfiguration
	var proxy KubeProxyConfiguration
	if err := yaml.UnmarshalStrict(docs[2], &proxy); err != nil {
		t.Fatal(err)
	}
	if proxy.Kind != "KubeProxyConfiguration" || proxy.Mode != "nftables" || proxy.ClusterCIDR != p.Pod.String() {
		t.Fatalf("kube-proxy document: %+v", proxy)
	}
	if err := yaml.UnmarshalStrict(docs[0], &init); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(docs[1], &cluster); err != nil {
		t.Fatal(err)
	}
	if init.Kind != "InitConfiguration" || cluster.Kind != "ClusterConfiguration" || cluster.APIVersion != "kubeadm.k8s.io/v1beta4" {
		t.Fatalf("kinds: %s %s %s", init.Kind, cluster.Kind, cluster.APIVersion)
	}
	if cluster.ClusterName != "alpha" || cluster.Networking.PodSubnet != "10.40.0.0/16" ||
		cluster.Networking.ServiceSubnet != "10.41.0.0/16" || init.LocalAPIEndpoint.AdvertiseAddress != "192.168.50.10" ||
		init.NodeRegistration.CRISocket != DefaultCRISocket || cluster.KubernetesVersion != KubernetesVersion {
		t.Fatalf("wrong values:\n%s", out)
	}
	if len(init.BootstrapTokens) != 1 || init.BootstrapTokens[0].Token != p.BootstrapToken {
		t.Fatalf("bootstrap token not rendered:\n%s", out)
	}
	// Slow machines: kubeadm's first API call (the admin ClusterRoleBinding)
	// must outlast the control plane's start under emulation (2-3 minutes).
	for name, v := range map[string]string{"controlPlaneComponentHealthCheck": init.Timeouts.ControlPlaneComponentHealthCheck,
		"kubeletHealthCheck": init.Timeouts.KubeletHealthCheck, "kubernetesAPICall": init.Timeouts.KubernetesAPICall} {
		if d, err := time.ParseDuration(v); err != nil || d < 5*time.Minute {
			t.Errorf("timeouts.%s = %q, want at least 5m", name, v)
		}
	}
}

func TestRenderInitRejectsInvalid(t *testing.T) {
	p := testParams()
	p.Pod = netip.Prefix{}
	if _, err := RenderInit(p); err == nil || !strings.Contains(err.Error(), "pod prefix") {
		t.Fatalf("got %v", err)
	}
}

func TestJoinConfigErrors(t *testing.T) {
	p := testParams()
	good := JoinParams{Endpoint: netip.MustParseAddrPort("192.168.50.10:6443"), Token: p.BootstrapToken,
		CACertHash: "sha256:" + strings.Repeat("ab", 32)}
	if _, err := JoinConfig(p, good); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*JoinParams){
		"endpoint":   func(j *JoinParams) { j.Endpoint = netip.AddrPort{} },
		"token":      func(j *JoinParams) { j.Token = "x" },
		"caCertHash": func(j *JoinParams) { j.CACertHash = "md5:00" },
	} {
		j := good
		mut(&j)
		if _, err := JoinConfig(p, j); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// TestBuildScriptPinsThisVersion keeps hack/build-kube.sh and KubernetesVersion in step.
func TestBuildScriptPinsThisVersion(t *testing.T) {
	b, err := os.ReadFile("../../hack/build-kube.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^KUBE_VERSION=(\S+)`).FindSubmatch(b)
	if m == nil || string(m[1]) != KubernetesVersion {
		t.Fatalf("hack/build-kube.sh pins %q, agent/kube.KubernetesVersion is %s", m, KubernetesVersion)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// decodePodStrict decodes a static pod manifest strictly into core/v1.
func decodePodStrict(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	obj, _, err := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer().Decode(b, nil, nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		t.Fatalf("%s: %T, want Pod", path, obj)
	}
	return pod
}

func hasArg(pod *corev1.Pod, arg string) bool {
	for _, c := range pod.Spec.Containers {
		for _, a := range c.Command {
			if a == arg {
				return true
			}
		}
	}
	return false
}

// TestKubeadmValidateAndDryRun runs the real kubeadm on the rendered file and
// checks that the allocation reaches the control-plane static pod manifests.
func TestKubeadmValidateAndDryRun(t *testing.T) {
	k := Kubeadm{Path: testrig.KubeBin(t, KubernetesVersion, "kubeadm")}
	ctx := context.Background()
	if v, err := k.Version(ctx); err != nil || v != KubernetesVersion {
		t.Fatalf("kubeadm version %q (%v), want %s", v, err, KubernetesVersion)
	}
	// A second allocation guards against values that merely match kubeadm's defaults.
	for _, p := range []SiteParams{testParams(), func() SiteParams {
		p := testParams()
		p.Site, p.NodeName = "beta", ""
		p.Pod, p.Service, p.Fabric = netip.MustParsePrefix("172.20.0.0/16"), netip.MustParsePrefix("172.21.0.0/20"), netip.MustParsePrefix("172.22.0.0/16")
		p.AdvertiseAddress, p.Gateway, p.ControllerNodes = netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("10.9.8.1"), nil
		return p.WithDefaults()
	}()} {
		t.Run(p.Site, func(t *testing.T) {
			out, err := RenderInit(p)
			if err != nil {
				t.Fatal(err)
			}
			cfg := writeFile(t, "kubeadm.yaml", out)
			if err := k.Validate(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			kd := k
			kd.Env = append(os.Environ(), "KUBEADM_INIT_DRYRUN_DIR="+dir)
			initOut, err := kd.Init(ctx, cfg, "--dry-run", "--ignore-preflight-errors=all")
			if err != nil {
				t.Fatal(err)
			}
			// kube-proxy's ConfigMap, as kubeadm would create it, carries the mode and the pod prefix.
			for _, want := range []string{"mode: nftables", "clusterCIDR: " + p.Pod.String()} {
				if !strings.Contains(string(initOut), want) {
					t.Errorf("kubeadm's kube-proxy config lacks %q", want)
				}
			}
			api := decodePodStrict(t, filepath.Join(dir, "kube-apiserver.yaml"))
			cm := decodePodStrict(t, filepath.Join(dir, "kube-controller-manager.yaml"))
			for pod, args := range map[*corev1.Pod][]string{
				api: {"--service-cluster-ip-range=" + p.Service.String(), "--advertise-address=" + p.AdvertiseAddress.String()},
				cm:  {"--cluster-cidr=" + p.Pod.String(), "--service-cluster-ip-range=" + p.Service.String(), "--cluster-name=" + p.Site},
			} {
				for _, a := range args {
					if !hasArg(pod, a) {
						t.Errorf("%s lacks %s: %v", pod.Name, a, pod.Spec.Containers[0].Command)
					}
				}
			}
		})
	}
}

// TestKubeadmValidateIsStrict shows the check has teeth: kubeadm rejects a
// rendered file with a misspelt field and an out-of-range value.
func TestKubeadmValidateIsStrict(t *testing.T) {
	k := Kubeadm{Path: testrig.KubeBin(t, KubernetesVersion, "kubeadm")}
	out, err := RenderInit(testParams())
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"unknown field": bytes.Replace(out, []byte("podSubnet:"), []byte("podSubnets:"), 1),
		"bad subnet":    bytes.Replace(out, []byte("serviceSubnet: 10.41.0.0/16"), []byte("serviceSubnet: 10.41.0.0/33"), 1),
	} {
		if err := k.Validate(context.Background(), writeFile(t, "bad.yaml", bad)); err == nil {
			t.Errorf("%s: kubeadm config validate accepted it", name)
		}
	}
}

func TestKubeadmValidateJoin(t *testing.T) {
	k := Kubeadm{Path: testrig.KubeBin(t, KubernetesVersion, "kubeadm")}
	p := testParams()
	p.NodeName, p.AdvertiseAddress = "alpha-2", netip.MustParseAddr("192.168.50.11")
	for _, cp := range []bool{false, true} {
		out, err := RenderJoin(p, JoinParams{Endpoint: netip.MustParseAddrPort("192.168.50.10:6443"),
			Token: p.BootstrapToken, CACertHash: "sha256:" + strings.Repeat("0f", 32),
			ControlPlane: cp, CertificateKey: strings.Repeat("ab", 32)})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Validate(context.Background(), writeFile(t, "join.yaml", out)); err != nil {
			t.Fatalf("controlPlane=%v: %v\n%s", cp, err, out)
		}
	}
}
