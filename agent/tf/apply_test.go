package tf

import (
	"context"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/internal/testrig"
)

// TestManifestAppliesToRealAPIServer applies the whole TF manifest to a real
// etcd + kube-apiserver (which validates every object), re-applies it (nothing
// may change), and reads the objects back.
func TestManifestAppliesToRealAPIServer(t *testing.T) {
	bin := testrig.KubeBin(t, kube.KubernetesVersion, "kube-apiserver")
	testrig.KubeBin(t, kube.KubernetesVersion, "etcd")
	api := testrig.StartKubeAPI(t, filepath.Dir(bin))
	a, err := kube.NewApplier(api.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := testParams()
	objs, err := Manifest(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := a.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changed) != len(objs) {
		t.Fatalf("first apply changed %d of %d objects", len(res.Changed), len(objs))
	}
	versions := map[string]string{}
	managed := map[string]int{}
	for _, o := range objs {
		u, err := a.Get(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		versions[u.GetKind()+"/"+u.GetName()] = u.GetResourceVersion()
		managed[u.GetKind()+"/"+u.GetName()] = len(u.GetManagedFields())
	}

	res, err = a.Apply(ctx, objs)
	if err != nil || len(res.Changed) != 0 || res.Unchanged != len(objs) {
		t.Fatalf("re-apply: %+v %v", res, err)
	}
	for _, o := range objs {
		u, err := a.Get(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		id := u.GetKind() + "/" + u.GetName()
		if u.GetResourceVersion() != versions[id] || len(u.GetManagedFields()) != managed[id] {
			t.Errorf("%s changed on re-apply: rv %s -> %s", id, versions[id], u.GetResourceVersion())
		}
		for _, mf := range u.GetManagedFields() {
			if mf.Manager != kube.FieldManager {
				t.Errorf("%s: field manager %q", id, mf.Manager)
			}
		}
	}

	// Read back typed objects and check what TF will see.
	var env corev1.ConfigMap
	getTyped(t, a, &corev1.ConfigMap{}, "env", objs, &env)
	if env.Data["VROUTER_GATEWAY"] != p.Gateway.String() || env.Data["BGP_ASN"] != "64601" ||
		env.Data["KUBERNETES_POD_SUBNETS"] != p.Pod.String() {
		t.Fatalf("env read back: %v", env.Data)
	}
	var agent appsv1.DaemonSet
	getTyped(t, a, &appsv1.DaemonSet{}, "contrail-agent", objs, &agent)
	if agent.Spec.Template.Spec.NodeSelector[VrouterLabel] != VrouterEnabled {
		t.Fatalf("vrouter DaemonSet read back without its node selector: %v", agent.Spec.Template.Spec.NodeSelector)
	}
}

// getTyped finds the rendered object of kind(like) named name, reads it from the
// server and converts it into out.
func getTyped(t *testing.T, a *kube.Applier, like runtime.Object, name string, objs []runtime.Object, out any) {
	t.Helper()
	likeU, err := kube.ToUnstructured(like)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		u, _ := kube.ToUnstructured(o)
		if u.GetKind() != likeU.GetKind() || u.GetName() != name {
			continue
		}
		live, err := a.Get(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(live.Object, out); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no %s %s rendered", likeU.GetKind(), name)
}
