package bringup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// elsewhere runs f on a fresh goroutine and waits. A Guard may call the change
// (and the evictor) on a thread locked into another network namespace; API
// calls must dial from an ordinary goroutine, which never runs on that thread.
func elsewhere(f func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return <-ch
}

// offThreadEvictor runs an evictor's API calls through elsewhere.
type offThreadEvictor struct{ ev netguard.NodeEvictor }

func (e offThreadEvictor) EvictVrouter(ctx context.Context, reason string) error {
	return elsewhere(func() error { return e.ev.EvictVrouter(ctx, reason) })
}

func labelNode(ctx context.Context, dyn dynamic.Interface, node string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{tf.VrouterLabel: tf.VrouterEnabled}}})
	if err != nil {
		return err
	}
	_, err = dyn.Resource(nodesResource).Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: kube.FieldManager})
	if err != nil {
		return fmt.Errorf("labelling node %q %s=%s: %w", node, tf.VrouterLabel, tf.VrouterEnabled, err)
	}
	return nil
}

// vrouter starts TF's vrouter on this node inside a guarded window unless it
// runs already or a revert keeps it off. It reports whether the pass may go on.
func (b *BringUp) vrouter(ctx context.Context, p *pass, cl *cluster, params kube.SiteParams) bool {
	node := params.NodeName
	obj, err := cl.dyn.Resource(nodesResource).Get(ctx, node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		p.wait(StepVrouter, fmt.Sprintf("node %q is not registered with the API server yet (kubelet registers it after kubeadm init)", node))
		return false
	case err != nil:
		p.fail(PhaseFailed, StepVrouter, fmt.Errorf("reading node %q: %w", node, err))
		return false
	}
	if obj.GetLabels()[tf.VrouterLabel] == tf.VrouterEnabled {
		p.step(StepVrouter, true, "vrouter enabled on node %s (%s=%s)", node, tf.VrouterLabel, tf.VrouterEnabled)
		return true
	}
	markerPath := filepath.Join(b.cfg.StateDir, MarkerFile)
	m, has, err := readMarker(markerPath)
	b.mu.Lock()
	reverted := b.reverted
	b.mu.Unlock()
	switch {
	case has && err != nil:
		p.fail(PhaseVrouterReverted, StepVrouter, fmt.Errorf("%v. %s", err, retryHint(markerPath)))
		return false
	case has:
		p.fail(PhaseVrouterReverted, StepVrouter, fmt.Errorf("vrouter start on node %s was reverted at %s: %s. %s",
			m.Node, m.At.Format(time.RFC3339), m.Reason, retryHint(markerPath)))
		return false
	case reverted:
		p.fail(PhaseVrouterReverted, StepVrouter, fmt.Errorf("vrouter start on node %s was reverted in this run and its marker %s could not be written; restart the agent after fixing the cause", node, markerPath))
		return false
	case b.guard == nil:
		p.fail(PhaseFailed, StepVrouter, fmt.Errorf("vrouter not started on node %s: no network guard configured (tfsite starts TF's vrouter only inside a netguard window)", node))
		return false
	}

	p.phase(PhaseVrouterGuard)
	spec := netguard.WrapSpec{
		Description: fmt.Sprintf("TF vrouter start on node %s (%s takes over %s)", node, VhostLink, params.PhysicalInterface),
		RemoveLinks: []string{VhostLink},
		Probes:      netguard.Probes{Gateway: params.Gateway.String(), Targets: slices.Clone(b.cfg.ProbeTargets)},
		Evictor:     offThreadEvictor{&kube.NodeLabelEvictor{Client: cl.dyn, Node: node, Label: tf.VrouterLabel, Log: b.log}},
	}
	var ran, labelFailed atomic.Bool
	out, err := b.guard.Wrap(ctx, spec, func(cctx context.Context) error {
		ran.Store(true)
		err := elsewhere(func() error { return labelNode(cctx, cl.dyn, node) })
		labelFailed.Store(err != nil)
		if err != nil {
			return err
		}
		// On the guard's thread: the link is looked up in its namespace.
		return b.waitTakeover(cctx, params.PhysicalInterface)
	})
	if out.ID != "" {
		b.mu.Lock()
		b.status.Vrouter = &out
		b.mu.Unlock()
	}
	switch {
	case err == nil && out.Confirmed:
		p.step(StepVrouter, true, "vrouter started on node %s: %s", node, out.Reason)
		return true
	case !ran.Load():
		p.fail(PhaseFailed, StepVrouter, fmt.Errorf("guarding the vrouter start: %w", err))
		return false
	case labelFailed.Load():
		// The label never reached the API server, so vrouter never started:
		// nothing was learnt about the network; the next pass tries again.
		p.fail(PhaseFailed, StepVrouter, fmt.Errorf("vrouter start on node %s not begun, retried next pass: %s", node, out.Reason))
		return false
	case ctx.Err() != nil:
		// Shutdown during the window: netguard reverted and took vrouter off;
		// that says nothing about the network, so the next start tries again.
		p.fail(PhaseFailed, StepVrouter, fmt.Errorf("vrouter start on node %s interrupted by shutdown and reverted; it is retried at the next start", node))
		return false
	}
	reason := out.Reason
	if reason == "" && err != nil {
		reason = err.Error()
	}
	if err != nil && !errors.Is(err, netguard.ErrReverted) {
		reason += " (" + err.Error() + ")"
	}
	mk := Marker{Node: node, Reason: oneline.Of(reason), Change: out.ID, At: time.Now().UTC()}
	if werr := writeMarker(markerPath, mk); werr != nil {
		b.mu.Lock()
		b.reverted = true
		b.mu.Unlock()
		p.fail(PhaseVrouterReverted, StepVrouter, fmt.Errorf("vrouter start on node %s reverted: %s; recording %s failed: %v", node, reason, markerPath, werr))
		return false
	}
	p.fail(PhaseVrouterReverted, StepVrouter, fmt.Errorf("vrouter start on node %s was reverted: %s. %s", node, reason, retryHint(markerPath)))
	return false
}

// waitTakeover waits until TF's vrouter has taken the NIC over (VhostLink
// exists), so the guard's health deadline measures the takeover, not the
// image pull before it. Not there within VrouterStart: an error, and the
// guard reverts (a vrouter that may take the NIC at any later moment is not
// left scheduled outside a guarded window).
func (b *BringUp) waitTakeover(ctx context.Context, nic string) error {
	if b.cfg.VrouterStart == 0 {
		return nil
	}
	deadline := time.Now().Add(b.cfg.VrouterStart)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := linkExists(VhostLink)
		if err != nil {
			return fmt.Errorf("looking for %s: %w", VhostLink, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("TF's vrouter did not take %s over (no %s) within %s of labelling the node; check the contrail-agent pods (kubectl -n %s get pods) and raise bringUp.vrouterStart for slow image pulls",
				nic, VhostLink, b.cfg.VrouterStart, tf.Namespace)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// retryHint tells the operator how to let tfsite try vrouter again.
func retryHint(marker string) string {
	return "TF's vrouter stays off this node; to retry, fix the cause (underlay gateway, VROUTER_GATEWAY) and delete " +
		marker + ": the next pass starts vrouter again inside a guarded window"
}
