package bringup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/agent/site"
	"github.com/tfsite/tfsite/agent/tf"
	"github.com/tfsite/tfsite/internal/oneline"
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
	Peers(ctx context.Context) ([]site.BGPPeer, error)
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
	msg := oneline.Of(err.Error())
	p.step(name, false, "%s", msg)
	p.end(phase, msg, "")
}

func (p *pass) wait(name, what string) {
	p.step(name, true, "waiting: %s", what)
	p.end(PhaseWaiting, "", what)
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
		p.step(StepCluster, false, "not yet: %s", oneline.Of(err.Error()))
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
