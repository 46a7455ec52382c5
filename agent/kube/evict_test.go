package kube_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/internal/testrig"
	"github.com/tfsite/tfsite/recovery/netguard"
)

var _ netguard.NodeEvictor = (*kube.NodeLabelEvictor)(nil)

var nodes = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}

func TestNodeLabelEvictorAgainstRealAPIServer(t *testing.T) {
	bin := testrig.KubeBin(t, kube.KubernetesVersion, "kube-apiserver")
	testrig.KubeBin(t, kube.KubernetesVersion, "etcd")
	api := testrig.StartKubeAPI(t, strings.TrimSuffix(bin, "/kube-apiserver"))
	dyn, err := dynamic.NewForConfig(api.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": "site-a-node", "labels": map[string]any{
			tf.VrouterLabel: tf.VrouterEnabled, "kubernetes.io/hostname": "site-a-node",
		}},
	}}
	if _, err := dyn.Resource(nodes).Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := kube.NewNodeLabelEvictor(api.Config, "site-a-node", tf.VrouterLabel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.EvictVrouter(ctx, "underlay gateway lost for 10s"); err != nil {
		t.Fatalf("evict: %v", err)
	}
	got, err := dyn.Resource(nodes).Get(ctx, "site-a-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labels := got.GetLabels()
	if _, ok := labels[tf.VrouterLabel]; ok {
		t.Fatalf("label %s still on the node after eviction: %v", tf.VrouterLabel, labels)
	}
	if labels["kubernetes.io/hostname"] != "site-a-node" {
		t.Fatalf("eviction touched other labels: %v", labels)
	}
	if err := e.EvictVrouter(ctx, "again"); err != nil {
		t.Fatalf("evicting a node without the label: %v, want success", err)
	}
	again, err := dyn.Resource(nodes).Get(ctx, "site-a-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetResourceVersion() != got.GetResourceVersion() {
		t.Errorf("repeated eviction changed the node: resourceVersion %s -> %s", got.GetResourceVersion(), again.GetResourceVersion())
	}

	missing := &kube.NodeLabelEvictor{Client: dyn, Node: "no-such-node", Label: tf.VrouterLabel}
	err = missing.EvictVrouter(ctx, "test")
	if err == nil || !strings.Contains(err.Error(), `"no-such-node"`) {
		t.Fatalf("unknown node: err = %v, want an error naming no-such-node", err)
	}
	if _, err := dyn.Resource(nodes).Get(ctx, "no-such-node", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("evicting an unknown node created it or failed oddly: %v", err)
	}
}

func TestNodeLabelEvictorRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		e    kube.NodeLabelEvictor
		want string
	}{
		{kube.NodeLabelEvictor{Node: "n1", Label: tf.VrouterLabel}, "no API client"},
		{kube.NodeLabelEvictor{Client: dynamic.New(nil), Node: "Bad_Node", Label: tf.VrouterLabel}, `node name "Bad_Node"`},
		{kube.NodeLabelEvictor{Client: dynamic.New(nil), Node: "n1", Label: "bad label"}, `label "bad label"`},
		{kube.NodeLabelEvictor{Client: dynamic.New(nil), Node: "", Label: ""}, `node name ""`},
	} {
		err := tc.e.EvictVrouter(context.Background(), "test")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want one naming %s", tc.e, err, tc.want)
		}
	}
}
