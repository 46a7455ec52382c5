package bringup

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// Steps of a real control plane (besides StepKubeadm).
const (
	// StepImages: the control-plane images are in containerd (imported from
	// the image's archive when missing).
	StepImages = "images"
	// StepCluster: what the new cluster looks like from its API server.
	StepCluster = "cluster"
)

// maxImageList bounds the images list file shipped beside the archive.
const maxImageList = 64 << 10

// importImages makes sure containerd (namespace k8s.io, the CRI's) holds
// every image the archive's list names, importing the archive when one is
// missing. It returns what it did, for the step's detail. No archive: nothing
// to do (a site with a registry pulls).
func (b *BringUp) importImages(ctx context.Context) (string, error) {
	if b.cfg.Images == "" {
		return "no images archive configured: kubeadm pulls", nil
	}
	if _, err := os.Stat(b.cfg.Images); errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("no archive at %s: kubeadm pulls", b.cfg.Images), nil
	}
	want, err := readImageList(b.cfg.Images + ".list")
	if err != nil {
		return "", err
	}
	have, err := b.ctr(ctx, "images", "ls", "-q")
	if err != nil {
		return "", err
	}
	missing := missingImages(want, strings.Fields(have))
	if len(missing) == 0 {
		return fmt.Sprintf("all %d control-plane images present in containerd", len(want)), nil
	}
	if _, err := b.ctr(ctx, "images", "import", b.cfg.Images); err != nil {
		return "", err
	}
	have, err = b.ctr(ctx, "images", "ls", "-q")
	if err != nil {
		return "", err
	}
	if still := missingImages(want, strings.Fields(have)); len(still) > 0 {
		return "", fmt.Errorf("imported %s but containerd still lacks %s", b.cfg.Images, strings.Join(still, ", "))
	}
	return fmt.Sprintf("imported %d control-plane images from %s", len(missing), b.cfg.Images), nil
}

func (b *BringUp) ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.cfg.Ctr, append([]string{"-n", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, oneline.Of(string(out)))
	}
	return string(out), nil
}

// readImageList reads the image names (one per line) shipped beside the archive.
func readImageList(path string) ([]string, error) {
	data, err := readlimit.File(path, "images list", maxImageList)
	if err != nil {
		return nil, fmt.Errorf("reading the images list: %w (the image ships it beside the archive)", err)
	}
	var names []string
	for _, l := range strings.Split(string(data), "\n") {
		if n := strings.TrimSpace(l); n != "" && !strings.HasPrefix(n, "#") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("images list %s names no image", path)
	}
	return names, nil
}

func missingImages(want, have []string) []string {
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// resetAfterFailedInit runs `kubeadm reset -f` so the next pass can run init
// again, and says so in the error the pass reports.
func (b *BringUp) resetAfterFailedInit(ctx context.Context, initErr error) error {
	k := b.kubeadm()
	out, err := k.Reset(ctx)
	if err != nil {
		return fmt.Errorf("%w; `kubeadm reset -f` failed too (%v: %s): reset by hand before the next attempt", initErr, err, oneline.Of(lastLine(out)))
	}
	return fmt.Errorf("%w; reset with `kubeadm reset -f`, the next pass (in %s) tries again", initErr, b.cfg.Interval)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// controlPlanePods are the static pods kubeadm init runs.
var controlPlanePods = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// clusterReport reads the new cluster from its API server: /readyz, this
// node's registration and pod CIDR (which must lie in the site's pod prefix),
// and the control-plane pods' phases. It errors while any of those is not
// as it should be.
func (b *BringUp) clusterReport(ctx context.Context, node string, pod netip.Prefix) (string, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", b.cfg.Kubeconfig)
	if err != nil {
		return "", fmt.Errorf("loading kubeconfig %s: %w", b.cfg.Kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", fmt.Errorf("API client: %w", err)
	}
	ready, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || strings.TrimSpace(string(ready)) != "ok" {
		return "", fmt.Errorf("API server /readyz: %q %v", oneline.Of(string(ready)), err)
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("node %s not registered yet: %w", node, err)
	}
	cidr, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil {
		return "", fmt.Errorf("node %s has no pod CIDR yet (%q)", node, n.Spec.PodCIDR)
	}
	if !pod.Contains(cidr.Addr()) || cidr.Bits() < pod.Bits() {
		return "", fmt.Errorf("node %s's pod CIDR %s is outside the site's pod prefix %s", node, cidr, pod)
	}
	readiness := "NotReady (no CNI before TF)"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			readiness = "Ready"
		}
	}
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("listing kube-system pods: %w", err)
	}
	var notRunning []string
	for _, want := range controlPlanePods {
		phase := "missing"
		for _, p := range pods.Items {
			if p.Name == want+"-"+node {
				phase = string(p.Status.Phase)
			}
		}
		if phase != string(corev1.PodRunning) {
			notRunning = append(notRunning, want+" "+phase)
		}
	}
	if len(notRunning) > 0 {
		return "", fmt.Errorf("control-plane pods not Running: %s", strings.Join(notRunning, ", "))
	}
	// Short enough for two console lines; the pods are named when one is not Running.
	return fmt.Sprintf("readyz ok; node %s podCIDR %s %s; %d/%d control-plane pods Running",
		node, cidr, readiness, len(controlPlanePods), len(controlPlanePods)), nil
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
