package bringup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// Source tells bring-up what the agent knows.
type Source interface {
	// Params are the site's parameters once the allocation AND the underlay
	// are known (Site, ASN, prefixes, address, gateway, interface); until
	// then the error says what is missing, and the pass waits for it.
	Params() (kube.SiteParams, error)
	// Peers are the other sites to BGP-peer with. An error (the agent is
	// unreachable) leaves TF's peering as it is.
	Peers(ctx context.Context) ([]tf.Peer, error)
}

// Guard runs a change inside a netguard window (*netguard.Guard does).
type Guard interface {
	Wrap(ctx context.Context, spec netguard.WrapSpec, change func(context.Context) error) (netguard.Outcome, error)
}

// Phases of Status.
const (
	PhaseWaiting         = "waiting"
	PhasePreflightFailed = "preflight-failed"
	PhaseKubeadm         = "kubeadm"
	PhaseApplying        = "applying"
	PhaseVrouterGuard    = "vrouter-guard"
	PhaseVrouterReverted = "vrouter-reverted"
	PhasePeering         = "peering"
	PhaseReady           = "ready"
	PhaseFailed          = "failed"
)

// Step names, in pass order.
const (
	StepParams    = "params"
	StepPreflight = "preflight"
	StepKubeadm   = "kubeadm"
	StepApply     = "apply"
	StepVrouter   = "vrouter"
	StepPeering   = "peering"
)

// VhostLink is the link TF's vrouter creates to take over the NIC.
const VhostLink = "vhost0"

// Step is the result of one step in the last pass.
type Step struct {
	Name   string    `json:"name"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Status is a JSON-friendly snapshot.
type Status struct {
	Phase string `json:"phase"`
	Error string `json:"error,omitempty"`
	// Waiting says what a waiting pass waits for.
	Waiting string `json:"waiting,omitempty"`
	Steps   []Step `json:"steps,omitempty"`
	// Vrouter is the last guarded vrouter start.
	Vrouter         *netguard.Outcome `json:"vrouter,omitempty"`
	PeersConfigured int               `json:"peersConfigured"`
	// Marker is the vrouter marker file (delete it to retry a reverted start).
	Marker string `json:"marker,omitempty"`
	// Passes counts completed passes.
	Passes int `json:"passes"`
	// Profile is "lab" under the lab profile (lowered preflight minimums).
	Profile string `json:"profile,omitempty"`
	// Running is the long step under way (images, kubeadm), nil between them.
	Running *Running `json:"running,omitempty"`
}

// Running names a step under way and when it began, so a slow machine shows
// progress instead of a silent phase.
type Running struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// BringUp is the agent's bring-up driver.
type BringUp struct {
	cfg   Config
	src   Source
	guard Guard
	log   *slog.Logger

	wake      chan struct{}
	closeOnce sync.Once
	closed    chan struct{}

	mu      sync.Mutex
	status  Status
	last    map[string]Step // previous pass's steps, to log changes only
	cl      *cluster
	peering *tf.Peering
	peerKey string
	// reverted keeps vrouter off in this process when the marker could not
	// be written.
	reverted bool
	passMu   sync.Mutex // one pass at a time
}

// New validates cfg and creates StateDir. guard may be nil: the vrouter step
// then fails (reported in Status) instead of starting vrouter unguarded.
func New(cfg Config, src Source, guard Guard, log *slog.Logger) (*BringUp, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("bringup: a Source is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("bringup: creating state dir: %w", err)
	}
	return &BringUp{
		cfg: cfg, src: src, guard: guard, log: log.With("component", "bringup"),
		wake: make(chan struct{}, 1), closed: make(chan struct{}),
		status: Status{Phase: PhaseWaiting, Marker: filepath.Join(cfg.StateDir, MarkerFile), Profile: cfg.Profile},
		last:   map[string]Step{},
	}, nil
}

// Wake asks Run for a pass now (allocation or membership changed).
func (b *BringUp) Wake() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Close stops Run (a pass in flight is cancelled); safe to call twice.
func (b *BringUp) Close() { b.closeOnce.Do(func() { close(b.closed) }) }

// Status returns a snapshot.
func (b *BringUp) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.status
	s.Steps = slices.Clone(s.Steps)
	if s.Vrouter != nil {
		v := *s.Vrouter
		s.Vrouter = &v
	}
	return s
}

// Run makes a pass at start, on every Wake and every Interval until ctx is
// done or Close is called; it returns nil then.
func (b *BringUp) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	// A timer, not a ticker: after a long pass (a failed kubeadm init and its
	// reset) the next one still waits Interval, as the step's error says.
	t := time.NewTimer(b.cfg.Interval)
	defer t.Stop()
	for {
		b.Pass(ctx)
		t.Reset(b.cfg.Interval)
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-t.C:
		}
	}
}

// pass carries one pass's steps.
type pass struct {
	b     *BringUp
	steps []Step
}

func (p *pass) step(name string, ok bool, format string, a ...any) {
	s := Step{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...), At: time.Now().UTC()}
	p.steps = append(p.steps, s)
	b := p.b
	b.mu.Lock()
	prev, seen := b.last[name]
	b.last[name] = s
	b.mu.Unlock()
	switch {
	case seen && prev.OK == s.OK && prev.Detail == s.Detail:
		b.log.Debug("bring-up step", "step", name, "ok", ok, "detail", s.Detail)
	case ok:
		b.log.Info("bring-up step", "step", name, "ok", ok, "detail", s.Detail)
	default:
		b.log.Warn("bring-up step", "step", name, "ok", ok, "detail", s.Detail)
	}
}

// phase publishes progress within the pass.
func (p *pass) phase(phase string) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	p.b.status.Phase, p.b.status.Error, p.b.status.Waiting = phase, "", ""
	p.b.status.Steps = slices.Clone(p.steps)
	p.b.status.Running = nil
}

// running publishes the steps so far and that step name is under way.
func (p *pass) running(name string) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	p.b.status.Steps = slices.Clone(p.steps)
	p.b.status.Running = &Running{Name: name, Since: time.Now().UTC()}
}

// end publishes the pass's result.
func (p *pass) end(phase, errMsg, waiting string) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	s := &p.b.status
	s.Phase, s.Error, s.Waiting = phase, errMsg, waiting
	s.Steps = slices.Clone(p.steps)
	s.Running = nil
	s.Passes++
}

// fail records a failed step and ends the pass in phase.
func (p *pass) fail(phase, name string, err error) {
	msg := oneLine(err.Error())
	p.step(name, false, "%s", msg)
	p.end(phase, msg, "")
}

func (p *pass) wait(name, what string) {
	p.step(name, true, "waiting: %s", what)
	p.end(PhaseWaiting, "", what)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Pass runs one level-triggered pass: it re-reads the desired state and
// converges the node on it. Run calls it; it is exported for tests and for
// callers that drive their own loop.
func (b *BringUp) Pass(ctx context.Context) {
	b.passMu.Lock()
	defer b.passMu.Unlock()
	p := &pass{b: b}
	params, err := b.src.Params()
	if err != nil {
		p.wait(StepParams, err.Error())
		return
	}
	if b.cfg.TFRegistry != "" {
		params.TFRegistry = b.cfg.TFRegistry
	}
	if b.cfg.TFTag != "" {
		params.TFTag = b.cfg.TFTag
	}
	params = params.WithDefaults()
	if err := params.Validate(); err != nil {
		p.fail(PhaseFailed, StepParams, fmt.Errorf("site parameters: %w", err))
		return
	}
	p.step(StepParams, true, "site %s, ASN %d, pod %s, service %s, node %s", params.Site, params.ASN, params.Pod, params.Service, params.NodeName)

	if !b.clusterUp(ctx, p, params) {
		return
	}
	cl, err := b.cluster()
	if err != nil {
		p.fail(PhaseFailed, StepKubeadm, err)
		return
	}

	p.phase(PhaseApplying)
	objs, err := tf.Manifest(params)
	if err != nil {
		p.fail(PhaseFailed, StepApply, err)
		return
	}
	res, err := cl.applier.Apply(ctx, objs)
	if err != nil {
		p.fail(PhaseFailed, StepApply, fmt.Errorf("applying TF's manifest: %w", err))
		return
	}
	p.step(StepApply, true, "TF manifest applied: %d changed, %d unchanged", len(res.Changed), res.Unchanged)
	// The cluster's health is reported, not waited for: TF's own pods are
	// what makes the node Ready, and they come with the vrouter start.
	if rep, err := b.clusterReport(ctx, params.NodeName, params.Pod); err != nil {
		p.step(StepCluster, false, "not yet: %s", oneLine(err.Error()))
	} else {
		p.step(StepCluster, true, "%s", rep)
	}

	if !b.vrouter(ctx, p, cl, params) {
		return
	}

	p.phase(PhasePeering)
	n, err := b.reconcilePeering(ctx, params)
	switch {
	case errors.Is(err, errNoPeerList):
		p.wait(StepPeering, err.Error())
		return
	case errors.Is(err, tf.ErrLocalRouterMissing):
		p.wait(StepPeering, fmt.Sprintf("TF's control node %q is not registered in the config API yet: %v", params.NodeName, err))
		return
	case err != nil:
		p.fail(PhaseFailed, StepPeering, err)
		return
	}
	b.mu.Lock()
	b.status.PeersConfigured = n
	b.mu.Unlock()
	p.step(StepPeering, true, "%d peer site(s) configured in TF", n)
	p.end(PhaseReady, "", "")
}

// clusterUp runs preflight and kubeadm init when there is no cluster yet. It
// reports whether the pass may go on.
func (b *BringUp) clusterUp(ctx context.Context, p *pass, params kube.SiteParams) bool {
	if _, err := os.Stat(b.cfg.Kubeconfig); err == nil {
		// After a reboot the kubelet restarts the static pods from containerd's
		// images: offline, they must still be there.
		if !b.ensureImages(ctx, p) {
			return false
		}
		p.step(StepKubeadm, true, "cluster exists (%s)", b.cfg.Kubeconfig)
		return true
	} else if !errors.Is(err, os.ErrNotExist) {
		p.fail(PhaseFailed, StepKubeadm, fmt.Errorf("checking %s: %w", b.cfg.Kubeconfig, err))
		return false
	}
	if b.cfg.Preflight {
		rep, err := kube.Preflight(ctx, b.cfg.preflightConfig())
		if err != nil {
			p.fail(PhasePreflightFailed, StepPreflight, err)
			return false
		}
		if !rep.Passed {
			var fails []string
			for _, c := range rep.Checks {
				if c.Status == kube.StatusFail {
					fails = append(fails, fmt.Sprintf("%s: %s (remedy: %s)", c.Name, c.Detail, c.Remedy))
				}
			}
			p.fail(PhasePreflightFailed, StepPreflight, fmt.Errorf("preflight failed, kubeadm init not run: %s", strings.Join(fails, "; ")))
			return false
		}
		p.step(StepPreflight, true, "%d checks passed", len(rep.Checks))
	} else {
		p.step(StepPreflight, true, "disabled")
	}
	p.phase(PhaseKubeadm)
	if !b.ensureImages(ctx, p) {
		return false
	}
	p.running(StepKubeadm)
	t0 := time.Now()
	if err := b.kubeadmInit(ctx, params); err != nil {
		p.fail(PhaseFailed, StepKubeadm, err)
		return false
	}
	if _, err := os.Stat(b.cfg.Kubeconfig); err != nil {
		p.fail(PhaseFailed, StepKubeadm, fmt.Errorf("kubeadm init finished but %s is missing (output in %s)",
			b.cfg.Kubeconfig, filepath.Join(b.cfg.StateDir, KubeadmLogFile)))
		return false
	}
	p.step(StepKubeadm, true, "kubeadm init done in %s (%s)", time.Since(t0).Round(time.Second), b.cfg.Kubeconfig)
	return true
}

// ensureImages runs the images step; it reports whether the pass may go on.
func (b *BringUp) ensureImages(ctx context.Context, p *pass) bool {
	p.running(StepImages)
	did, err := b.importImages(ctx)
	if err != nil {
		p.fail(PhaseFailed, StepImages, err)
		return false
	}
	p.step(StepImages, true, "%s", did)
	return true
}

// kubeadmInit renders kubeadm.yaml and runs the real `kubeadm init`; its
// output goes to kubeadm-init.log.
func (b *BringUp) kubeadmInit(ctx context.Context, params kube.SiteParams) error {
	data, err := kube.RenderInit(params)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(b.cfg.StateDir, KubeadmConfigFile)
	if err := atomicfile.Write(cfgPath, data, 0o600); err != nil {
		return fmt.Errorf("writing kubeadm config: %w", err)
	}
	k := b.kubeadm()
	args := append([]string{"init", "--config", cfgPath}, b.cfg.KubeadmArgs...)
	out, runErr := k.Init(ctx, cfgPath, b.cfg.KubeadmArgs...)
	logPath := filepath.Join(b.cfg.StateDir, KubeadmLogFile)
	header := fmt.Sprintf("# %s %s at %s\n", b.cfg.Kubeadm, strings.Join(args, " "), time.Now().UTC().Format(time.RFC3339))
	if err := atomicfile.Write(logPath, []byte(header+out), 0o600); err != nil {
		b.log.Warn("writing kubeadm log", "err", err)
	}
	if runErr != nil {
		last := ""
		if l := kubeadmError(out); l != "" {
			last = ": " + l
		}
		if errors.Is(runErr, kube.ErrKubeadmFailed) {
			return b.resetAfterFailedInit(ctx, fmt.Errorf("kubeadm init failed (output in %s)%s", logPath, last))
		}
		return fmt.Errorf("kubeadm init (output in %s): %w", logPath, runErr)
	}
	return nil
}

// kubeadmError picks the line of kubeadm's output that says what failed: the
// last one, skipping the closing hint about --v=5 and blank lines.
func kubeadmError(out string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "To see the stack trace") {
			return l
		}
	}
	return ""
}

func (b *BringUp) kubeadm() kube.Kubeadm {
	k := kube.Kubeadm{Path: b.cfg.Kubeadm, Log: b.log}
	if len(b.cfg.KubeadmEnv) > 0 {
		k.Env = append(os.Environ(), b.cfg.KubeadmEnv...)
	}
	return k
}

// cluster holds API clients for one version of the kubeconfig.
type cluster struct {
	mod     time.Time
	size    int64
	dyn     dynamic.Interface
	applier *kube.Applier
}

// cluster loads the kubeconfig, reusing clients while the file is unchanged.
func (b *BringUp) cluster() (*cluster, error) {
	st, err := os.Stat(b.cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	if c := b.cl; c != nil && c.mod.Equal(st.ModTime()) && c.size == st.Size() {
		return c, nil
	}
	rc, err := clientcmd.BuildConfigFromFlags("", b.cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", b.cfg.Kubeconfig, err)
	}
	rc.Timeout = 30 * time.Second
	// client-go's default (5 QPS) would throttle the ~40 requests of an apply
	// pass to seconds; the API server is this site's own.
	rc.QPS, rc.Burst = 100, 200
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("API client from %s: %w", b.cfg.Kubeconfig, err)
	}
	ap, err := kube.NewApplier(rc, b.log)
	if err != nil {
		return nil, err
	}
	b.cl = &cluster{mod: st.ModTime(), size: st.Size(), dyn: dyn, applier: ap}
	return b.cl, nil
}

var nodesResource = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}

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
	mk := Marker{Node: node, Reason: oneLine(reason), Change: out.ID, At: time.Now().UTC()}
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

// ConfigAPIEndpoint is the TF config API the peering talks to.
func (c Config) ConfigAPIEndpoint(params kube.SiteParams) string {
	if c.ConfigAPI != "" {
		return c.ConfigAPI
	}
	return "http://" + netip.AddrPortFrom(params.AdvertiseAddress, ConfigAPIPort).String()
}

// errNoPeerList: the Source could not list the peers; the pass waits.
var errNoPeerList = errors.New("the peer sites are not known: TF's peering is left as it is")

// reconcilePeering converges TF's BGP configuration on src.Peers(); it
// returns how many peers are configured.
func (b *BringUp) reconcilePeering(ctx context.Context, params kube.SiteParams) (int, error) {
	pc := tf.DefaultPeeringConfig()
	pc.Endpoint, pc.LocalRouter, pc.ASN = b.cfg.ConfigAPIEndpoint(params), params.NodeName, params.ASN
	key := fmt.Sprintf("%s|%s|%d", pc.Endpoint, pc.LocalRouter, pc.ASN)
	if b.peering == nil || b.peerKey != key {
		pr, err := tf.NewPeering(pc, nil, nil, b.log)
		if err != nil {
			return 0, err
		}
		b.peering, b.peerKey = pr, key
	}
	peers, err := b.src.Peers(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errNoPeerList, err)
	}
	ch, err := b.peering.Reconcile(ctx, peers)
	if !ch.Empty() {
		b.log.Info("BGP peering changed", "created", ch.Created, "updated", ch.Updated, "deleted", ch.Deleted,
			"linked", ch.Linked, "unlinked", ch.Unlinked, "asnSet", ch.ASNSet)
	}
	if err != nil {
		return 0, fmt.Errorf("BGP peering via %s: %w", pc.Endpoint, err)
	}
	return len(peers), nil
}
