package kube

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tfsite/tfsite/internal/testrig"
)

func TestEncodeYAMLDropsServerFields(t *testing.T) {
	b, err := EncodeYAML("# h\n", []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Data: map[string]string{"k": "v"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "r"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"# h\n", "apiVersion: v1\n", "kind: ConfigMap\n", "---\n", "apiVersion: rbac.authorization.k8s.io/v1\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	if strings.Contains(s, "creationTimestamp") || strings.Contains(s, "status") {
		t.Errorf("server-owned fields rendered:\n%s", s)
	}
}

type unregistered struct{ metav1.TypeMeta }

func (u *unregistered) DeepCopyObject() runtime.Object { c := *u; return &c }

func TestToUnstructuredUnknownType(t *testing.T) {
	if _, err := ToUnstructured(&unregistered{}); err == nil {
		t.Fatal("want an error for a type outside Scheme")
	}
}

// TestApplyAgainstRealAPIServer applies to a real etcd + kube-apiserver: the
// first apply creates, the second changes nothing, an edit is applied, and
// tfsite owns the fields it set.
func TestApplyAgainstRealAPIServer(t *testing.T) {
	bin := testrig.KubeBin(t, KubernetesVersion, "kube-apiserver")
	testrig.KubeBin(t, KubernetesVersion, "etcd")
	api := testrig.StartKubeAPI(t, strings.TrimSuffix(bin, "/kube-apiserver"))
	a, err := NewApplier(api.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tfsite-test", Namespace: "kube-system"}, Data: map[string]string{"A": "1"}}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "tfsite-test"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
	objs := []runtime.Object{cm, role}
	res, err := a.Apply(ctx, objs)
	if err != nil || len(res.Changed) != 2 {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	before, err := a.Get(ctx, cm)
	if err != nil {
		t.Fatal(err)
	}
	res, err = a.Apply(ctx, objs)
	if err != nil || len(res.Changed) != 0 || res.Unchanged != 2 {
		t.Fatalf("re-apply changed something: %+v %v", res, err)
	}
	after, _ := a.Get(ctx, cm)
	if before.GetResourceVersion() != after.GetResourceVersion() {
		t.Fatalf("resourceVersion moved on re-apply: %s -> %s", before.GetResourceVersion(), after.GetResourceVersion())
	}
	mf := after.GetManagedFields()
	if len(mf) != 1 || mf[0].Manager != FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managedFields %+v", mf)
	}
	cm.Data["A"] = "2"
	res, err = a.Apply(ctx, objs)
	if err != nil || len(res.Changed) != 1 || res.Changed[0] != "ConfigMap kube-system/tfsite-test" {
		t.Fatalf("edit: %+v %v", res, err)
	}
	got, _ := a.Get(ctx, cm)
	if v, _, _ := unstructuredString(got.Object, "data", "A"); v != "2" {
		t.Fatalf("data.A = %q", v)
	}
	bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name", Namespace: "kube-system"}}
	if _, err := a.Apply(ctx, []runtime.Object{bad}); err == nil || !strings.Contains(err.Error(), "Bad_Name") {
		t.Fatalf("invalid object: %v", err)
	}
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	cur := any(obj)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}
