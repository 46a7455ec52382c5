package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

var nodesResource = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}

// NodeLabelEvictor takes TF's vrouter off one node by removing the node label
// the vrouter DaemonSet selects (tf.VrouterLabel). It implements
// netguard.NodeEvictor, so a guarded vrouter bring-up that loses the underlay
// takes vrouter off the node before restoring the host's network.
type NodeLabelEvictor struct {
	Client dynamic.Interface
	Node   string       // the Node object's name
	Label  string       // label key to remove, e.g. tf.VrouterLabel
	Log    *slog.Logger // optional
}

// NewNodeLabelEvictor connects to the API server described by cfg.
func NewNodeLabelEvictor(cfg *rest.Config, node, label string, log *slog.Logger) (*NodeLabelEvictor, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating dynamic client: %w", err)
	}
	e := &NodeLabelEvictor{Client: dyn, Node: node, Label: label, Log: log}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *NodeLabelEvictor) validate() error {
	var errs []error
	if e.Client == nil {
		errs = append(errs, errors.New("vrouter evictor: no API client"))
	}
	if msgs := validation.IsDNS1123Subdomain(e.Node); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("vrouter evictor: node name %q: %s", e.Node, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsQualifiedName(e.Label); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("vrouter evictor: label %q: %s", e.Label, strings.Join(msgs, "; ")))
	}
	return errors.Join(errs...)
}

// EvictVrouter removes the label from the node with a JSON merge patch
// (a null value deletes the key). A label that is already gone is success,
// so a repeated eviction changes nothing.
func (e *NodeLabelEvictor) EvictVrouter(ctx context.Context, reason string) error {
	if err := e.validate(); err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{e.Label: nil}}})
	if err != nil {
		return fmt.Errorf("encoding the label patch: %w", err)
	}
	_, err = e.Client.Resource(nodesResource).Patch(ctx, e.Node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("taking vrouter off node %q: the API server has no such node; check the agent's node name (kubectl get nodes)", e.Node)
	case err != nil:
		return fmt.Errorf("taking vrouter off node %q (removing label %s): %w", e.Node, e.Label, err)
	}
	if e.Log != nil {
		e.Log.Warn("took vrouter off this node", "node", e.Node, "label", e.Label, "reason", reason)
	}
	return nil
}
