// Package bringup drives a site's bring-up from the agent: preflight, the real
// `kubeadm init`, server-side apply of TF's manifest, TF's vrouter started on
// this node inside a netguard window (reverted and kept off when the host
// loses the underlay), and TF's BGP peering with the other sites. Every pass
// re-reads the desired state and converges; repeating a pass is harmless.
package bringup

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/kube"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// Defaults; the bring-up settings also in the site config's bringUp section
// take theirs from agent/config, so the two agree.
const (
	DefaultStateDir     = "/var/lib/tfsite/bringup"
	DefaultKubeconfig   = config.DefaultKubeconfig
	DefaultGuardWindow  = config.DefaultGuardWindow
	DefaultVrouterStart = config.DefaultVrouterStart
	DefaultInterval     = config.DefaultBringUpInterval
	// ConfigAPIPort is TF's config API (VNC REST) port.
	ConfigAPIPort = 8082
)

// Files in StateDir.
const (
	KubeadmConfigFile = "kubeadm.yaml"
	KubeadmLogFile    = "kubeadm-init.log"
	MarkerFile        = "vrouter-evicted.json"
)

// Config configures a BringUp.
type Config struct {
	// StateDir (<agent stateDir>/bringup) holds the rendered kubeadm.yaml, the
	// kubeadm output log and the vrouter marker.
	StateDir string
	// Kubeconfig is the cluster admin kubeconfig; when it exists the cluster
	// exists and kubeadm init is skipped.
	Kubeconfig string
	// Kubeadm is the kubeadm binary; KubeadmArgs are extra `kubeadm init`
	// arguments (tests: --dry-run); KubeadmEnv are extra environment
	// variables (KEY=VALUE) for kubeadm, added to the agent's environment.
	Kubeadm     string
	KubeadmArgs []string
	KubeadmEnv  []string
	// Preflight runs kube.Preflight before kubeadm init (not once the cluster
	// exists). PreflightConfig's zero value means kube.DefaultPreflightConfig();
	// otherwise its empty strings and seams are filled from the defaults and
	// its thresholds are taken as given.
	Preflight       bool
	PreflightConfig kube.PreflightConfig
	// TFRegistry and TFTag select TF's images (kube.SiteParams); empty: defaults.
	TFRegistry, TFTag string
	// ConfigAPI is TF's VNC endpoint; "" means http://<advertise address>:8082.
	ConfigAPI string
	// GuardWindow is the netguard deadline for the vrouter start (build the
	// Guard with GuardConfig so the two agree).
	GuardWindow time.Duration
	// VrouterStart is how long the guarded window waits, after labelling the
	// node, for TF's vrouter to take the NIC over (VhostLink appears) before
	// the GuardWindow's health deadline starts; vrouter not there by then is
	// reverted like a lockout. 0 starts the deadline at the label (labs
	// without a vrouter).
	VrouterStart time.Duration
	// ProbeTargets are extra netguard probe targets ("icmp:ADDR",
	// "tcp:ADDR:PORT": a voter, the API server) besides the underlay gateway.
	ProbeTargets []string
	// Interval between level-triggered passes.
	Interval time.Duration
	// Profile is config.ProfileLab when preflight runs with the lab profile's
	// lowered minimums (reported in status); "" otherwise.
	Profile string
	// Images is the control-plane images archive (hack/build-kube.sh) that
	// is imported into containerd's k8s.io namespace before kubeadm init;
	// Images+".list" names the images it holds. A missing archive is not an
	// error: with a registry, kubeadm pulls what is missing.
	Images string
	// Ctr is containerd's ctr binary (PATH is searched).
	Ctr string
}

// DefaultImages is where the appliance image ships the control-plane images.
const DefaultImages = "/usr/share/tfsite/kube-images.tar"

// Default returns the documented defaults.
func Default() Config {
	return Config{
		StateDir:     DefaultStateDir,
		Kubeconfig:   DefaultKubeconfig,
		Kubeadm:      "kubeadm",
		Preflight:    true,
		Images:       DefaultImages,
		Ctr:          "ctr",
		GuardWindow:  DefaultGuardWindow,
		VrouterStart: DefaultVrouterStart,
		Interval:     DefaultInterval,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("bringup: "+format, a...)) }
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		bad("stateDir %q: must be an absolute directory path (default %s)", c.StateDir, DefaultStateDir)
	}
	for _, e := range c.KubeadmEnv {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			bad("kubeadmEnv %q: want KEY=VALUE", e)
		}
	}
	for _, fe := range config.CheckBringUp(config.BringUpValues{
		Kubeconfig: c.Kubeconfig, Kubeadm: c.Kubeadm, KubeadmArgs: c.KubeadmArgs, ProbeTargets: c.ProbeTargets,
		ConfigAPI: c.ConfigAPI, GuardWindow: c.GuardWindow, VrouterStart: c.VrouterStart, Interval: c.Interval,
	}) {
		bad("%s: %w", fe.Field, fe.Err)
	}
	if c.Preflight && !isZero(c.PreflightConfig) {
		if err := c.preflightConfig().Validate(); err != nil {
			bad("preflight: %v", err)
		}
	}
	return errors.Join(errs...)
}

func isZero(p kube.PreflightConfig) bool { return reflect.ValueOf(p).IsZero() }

// preflightConfig fills what PreflightConfig leaves empty from the defaults.
func (c Config) preflightConfig() kube.PreflightConfig {
	d := kube.DefaultPreflightConfig()
	if c.Kubeadm != "" {
		d.Kubeadm = c.Kubeadm
	}
	p := c.PreflightConfig
	if isZero(p) {
		return d
	}
	fill := func(s *string, def string) {
		if *s == "" {
			*s = def
		}
	}
	fill(&p.Root, d.Root)
	fill(&p.DiskPath, d.DiskPath)
	fill(&p.MinKernel, d.MinKernel)
	fill(&p.CRISocket, d.CRISocket)
	fill(&p.TFRelease, d.TFRelease)
	fill(&p.Kubeadm, d.Kubeadm)
	fill(&p.Kubelet, d.Kubelet)
	if len(p.Matrix.Releases) == 0 {
		p.Matrix = d.Matrix
	}
	if p.DiskFree == nil {
		p.DiskFree = d.DiskFree
	}
	if p.Version == nil {
		p.Version = d.Version
	}
	return p
}

// GuardConfig returns netguard's defaults with stateDir and Timeout =
// GuardWindow (settle shortened to a third of a window under 6 s), for the
// Guard the agent passes to New.
func (c Config) GuardConfig(stateDir string) netguard.Config {
	g := netguard.Default()
	g.StateDir = stateDir
	if c.GuardWindow > 0 {
		g.Timeout = c.GuardWindow
	}
	if g.Timeout < 2*g.Settle {
		g.Settle = g.Timeout / 3
	}
	if g.Interval > g.Settle {
		g.Interval = g.Settle
	}
	return g
}
