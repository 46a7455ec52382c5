package tf

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/tfsite/tfsite/agent/kube"
)

func testParams() kube.SiteParams {
	return kube.SiteParams{
		Site:              "alpha",
		ASN:               64601,
		Pod:               netip.MustParsePrefix("10.40.0.0/16"),
		Service:           netip.MustParsePrefix("10.41.0.0/16"),
		Fabric:            netip.MustParsePrefix("10.42.0.0/16"),
		AdvertiseAddress:  netip.MustParseAddr("192.168.50.10"),
		Gateway:           netip.MustParseAddr("192.168.50.1"),
		PhysicalInterface: "ens3",
		TFRegistry:        "registry.example:5000/tf",
		TFTag:             "r24.1",
	}.WithDefaults()
}

// decodeStrict decodes every document of a rendered stream strictly into
// k8s.io/api types: unknown or duplicate fields fail.
func decodeStrict(t *testing.T, stream []byte) []runtime.Object {
	t.Helper()
	dec := serializer.NewCodecFactory(kube.Scheme(), serializer.EnableStrict).UniversalDeserializer()
	var out []runtime.Object
	for i, doc := range bytes.Split(stream, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("document %d does not decode strictly: %v\n%s", i, err, doc)
		}
		switch gvk.GroupVersion().String() {
		case "v1", "apps/v1", "rbac.authorization.k8s.io/v1":
		default:
			t.Fatalf("document %d uses %s: only v1, apps/v1, rbac.authorization.k8s.io/v1 allowed", i, gvk)
		}
		out = append(out, obj)
	}
	return out
}

func TestRenderDecodesStrictly(t *testing.T) {
	b, err := Render(testParams())
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeStrict(t, b)
	want, _ := Manifest(testParams())
	if len(objs) != len(want) || len(objs) < 15 {
		t.Fatalf("decoded %d objects, rendered %d", len(objs), len(want))
	}
	if bytes.Contains(b, []byte("creationTimestamp")) || bytes.Contains(b, []byte("{{")) {
		t.Fatalf("rendered stream carries server fields or template placeholders")
	}
}

// TestStrictDecoderHasTeeth proves the decoder used above rejects a misspelt field.
func TestStrictDecoderHasTeeth(t *testing.T) {
	b, _ := Render(testParams())
	bad := bytes.Replace(b, []byte("hostNetwork: true"), []byte("hostNetwerk: true"), 1)
	dec := serializer.NewCodecFactory(kube.Scheme(), serializer.EnableStrict).UniversalDeserializer()
	for _, doc := range bytes.Split(bad, []byte("\n---\n")) {
		if bytes.Contains(doc, []byte("hostNetwerk")) {
			if _, _, err := dec.Decode(doc, nil, nil); err == nil {
				t.Fatal("strict decoder accepted an unknown field")
			}
			return
		}
	}
	t.Fatal("no DaemonSet with hostNetwork rendered")
}

func index(t *testing.T, objs []runtime.Object) (map[string]*corev1.ConfigMap, map[string]*appsv1.DaemonSet) {
	t.Helper()
	cms, dss := map[string]*corev1.ConfigMap{}, map[string]*appsv1.DaemonSet{}
	for _, o := range objs {
		switch x := o.(type) {
		case *corev1.ConfigMap:
			cms[x.Name] = x
		case *appsv1.DaemonSet:
			dss[x.Name] = x
		}
	}
	return cms, dss
}

func TestEnvCarriesTheAllocation(t *testing.T) {
	p := testParams()
	objs, err := Manifest(p)
	if err != nil {
		t.Fatal(err)
	}
	cms, _ := index(t, objs)
	env := cms["env"].Data
	if env["VROUTER_GATEWAY"] != "192.168.50.1" {
		t.Fatalf("VROUTER_GATEWAY = %q, want the underlay gateway", env["VROUTER_GATEWAY"])
	}
	for _, c := range append(p.ControllerNodes, p.AdvertiseAddress) {
		if env["VROUTER_GATEWAY"] == c.String() {
			t.Fatalf("VROUTER_GATEWAY is the master's address %s (the seed's lock-out)", c)
		}
	}
	for k, v := range map[string]string{
		"PHYSICAL_INTERFACE": "ens3", "CONTROLLER_NODES": "192.168.50.10", "BGP_ASN": "64601",
		"KUBERNETES_POD_SUBNETS": "10.40.0.0/16", "KUBERNETES_IP_FABRIC_SUBNETS": "10.42.0.0/16",
		"ENABLE_4BYTE_AS": "false",
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	km := cms["kube-manager-config"].Data
	for k, v := range map[string]string{
		"KUBERNETES_POD_SUBNETS": "10.40.0.0/16", "KUBERNETES_SERVICE_SUBNETS": "10.41.0.0/16",
		"KUBERNETES_IP_FABRIC_SUBNETS": "10.42.0.0/16", "KUBERNETES_API_SERVER": "192.168.50.10",
		"KUBERNETES_API_SECURE_PORT": "6443",
	} {
		if km[k] != v {
			t.Errorf("kube-manager-config %s = %q, want %q", k, km[k], v)
		}
	}
}

func TestFourByteASN(t *testing.T) {
	p := testParams()
	p.ASN = 4200000001
	objs, err := Manifest(p)
	if err != nil {
		t.Fatal(err)
	}
	cms, _ := index(t, objs)
	if cms["env"].Data["BGP_ASN"] != "4200000001" || cms["env"].Data["ENABLE_4BYTE_AS"] != "true" {
		t.Fatalf("env: %v", cms["env"].Data)
	}
}

func TestManifestRefusesMasterAsGateway(t *testing.T) {
	p := testParams()
	p.Gateway = p.AdvertiseAddress
	if _, err := Manifest(p); err == nil || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("got %v", err)
	}
}

// TestManifestIsConsistent checks references inside the manifest: every mount
// names a volume of its pod, every envFrom names a rendered ConfigMap, every
// image comes from the configured registry and tag, the vrouter runs only where
// the recovery-removable label is set.
func TestManifestIsConsistent(t *testing.T) {
	p := testParams()
	objs, err := Manifest(p)
	if err != nil {
		t.Fatal(err)
	}
	cms, dss := index(t, objs)
	for _, ds := range dss {
		spec := ds.Spec.Template.Spec
		if !spec.HostNetwork {
			t.Errorf("%s: not hostNetwork", ds.Name)
		}
		for k, v := range ds.Spec.Selector.MatchLabels {
			if ds.Spec.Template.Labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match its template", ds.Name, k, v)
			}
		}
		vols := map[string]bool{}
		for _, v := range spec.Volumes {
			if vols[v.Name] {
				t.Errorf("%s: volume %s declared twice", ds.Name, v.Name)
			}
			vols[v.Name] = true
		}
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			if !strings.HasPrefix(c.Image, "registry.example:5000/tf/") || !strings.HasSuffix(c.Image, ":r24.1") {
				t.Errorf("%s/%s: image %s not from the configured registry/tag", ds.Name, c.Name, c.Image)
			}
			for _, m := range c.VolumeMounts {
				if !vols[m.Name] {
					t.Errorf("%s/%s mounts undeclared volume %s", ds.Name, c.Name, m.Name)
				}
			}
			for _, e := range c.EnvFrom {
				if cms[e.ConfigMapRef.Name] == nil {
					t.Errorf("%s/%s loads missing ConfigMap %s", ds.Name, c.Name, e.ConfigMapRef.Name)
				}
			}
		}
	}
	agent := dss["contrail-agent"]
	if agent == nil || agent.Spec.Template.Spec.NodeSelector[VrouterLabel] != VrouterEnabled {
		t.Fatalf("vrouter DaemonSet must select %s=%s", VrouterLabel, VrouterEnabled)
	}
	var env bool
	for _, e := range agent.Spec.Template.Spec.Containers[0].EnvFrom {
		env = env || e.ConfigMapRef.Name == "env"
	}
	if !env {
		t.Fatal("vrouter agent does not load the env ConfigMap (where KUBERNETES_POD_SUBNETS must be)")
	}
	var binding *rbacv1.ClusterRoleBinding
	for _, o := range objs {
		if b, ok := o.(*rbacv1.ClusterRoleBinding); ok {
			binding = b
		}
	}
	if binding == nil || binding.Subjects[0].Namespace != Namespace {
		t.Fatal("kube-manager ClusterRoleBinding missing")
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	a, _ := Render(testParams())
	b, _ := Render(testParams())
	if !bytes.Equal(a, b) {
		t.Fatal("two renders differ")
	}
	p := testParams()
	p.Site = "beta"
	c, _ := Render(p)
	if bytes.Equal(a, c) {
		t.Fatal("different sites render the same manifest")
	}
}
