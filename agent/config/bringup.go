package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/tfsite/tfsite/internal/probe"
)

// Bring-up's defaults and limits. bringup.Config (the bring-up process's own
// config) takes its defaults from here and checks its values with
// CheckBringUp, so both accept exactly the same settings.
const (
	// DefaultKubeconfig is where kubeadm init writes the admin kubeconfig.
	DefaultKubeconfig  = "/etc/kubernetes/admin.conf"
	DefaultGuardWindow = 10 * time.Second
	MinGuardWindow     = time.Second
	MaxGuardWindow     = time.Hour
	// DefaultVrouterStart bounds the wait for vrouter to take the NIC over
	// after the node is labelled (image pulls on a slow uplink).
	DefaultVrouterStart    = 15 * time.Minute
	MaxVrouterStart        = 24 * time.Hour
	DefaultBringUpInterval = 30 * time.Second
	MinBringUpInterval     = time.Second
)

// BringUpValues are the settings that the bringUp section and bringup.Config
// both carry.
type BringUpValues struct {
	Kubeconfig, Kubeadm       string
	KubeadmArgs, ProbeTargets []string
	ConfigAPI                 string
	GuardWindow, VrouterStart time.Duration
	Interval                  time.Duration
}

// FieldError is one problem of one setting; Field is its YAML key under
// bringUp (with an index for list items).
type FieldError struct {
	Field string
	Err   error
}

// CheckBringUp checks v by the one set of rules both configs use and
// returns every problem.
func CheckBringUp(v BringUpValues) []FieldError {
	var errs []FieldError
	add := func(field, format string, a ...any) {
		errs = append(errs, FieldError{Field: field, Err: fmt.Errorf(format, a...)})
	}
	if !filepath.IsAbs(v.Kubeconfig) {
		add("kubeconfig", "%q must be an absolute path (default %s)", v.Kubeconfig, DefaultKubeconfig)
	}
	if strings.TrimSpace(v.Kubeadm) == "" {
		add("kubeadm", "empty; name the kubeadm binary (default kubeadm, found on PATH)")
	}
	for i, a := range v.KubeadmArgs {
		if a == "--config" || strings.HasPrefix(a, "--config=") {
			add(fmt.Sprintf("kubeadmArgs[%d]", i), "%q: bring-up renders and passes --config itself; remove it", a)
		}
	}
	if v.ConfigAPI != "" {
		u, err := url.Parse(v.ConfigAPI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("configAPI", "%q is not an http(s) URL; use e.g. http://10.0.0.1:8082, or leave it empty for the underlay address", v.ConfigAPI)
		}
	}
	if g := v.GuardWindow; g < MinGuardWindow || g > MaxGuardWindow {
		add("guardWindow", "%s is out of range; use %s to %s (default %s)", g, MinGuardWindow, MaxGuardWindow, DefaultGuardWindow)
	}
	if s := v.VrouterStart; s < 0 || s > MaxVrouterStart {
		add("vrouterStart", "%s is out of range; use up to %s (default %s: TF's images are large), or 0s in labs without a vrouter", s, MaxVrouterStart, DefaultVrouterStart)
	}
	if v.Interval < MinBringUpInterval {
		add("interval", "%s is too short; use at least %s (default %s)", v.Interval, MinBringUpInterval, DefaultBringUpInterval)
	}
	for i, t := range v.ProbeTargets {
		if _, err := probe.Parse(t); err != nil {
			add(fmt.Sprintf("probeTargets[%d]", i), "%w", err)
		}
	}
	return errs
}

// validate reports every problem of the bringUp section, one line each. The
// section is checked even when bring-up is off, so a typo is found before
// someone turns it on.
func (b BringUp) validate() []error {
	var errs []error
	for _, fe := range CheckBringUp(BringUpValues{
		Kubeconfig: b.Kubeconfig, Kubeadm: b.Kubeadm, KubeadmArgs: b.KubeadmArgs, ProbeTargets: b.ProbeTargets,
		ConfigAPI: b.ConfigAPI, GuardWindow: time.Duration(b.GuardWindow), VrouterStart: time.Duration(b.VrouterStart),
		Interval: time.Duration(b.Interval),
	}) {
		errs = append(errs, fmt.Errorf("bringUp.%s: %w", fe.Field, fe.Err))
	}
	if b.Profile != "" && b.Profile != ProfileProduction && b.Profile != ProfileLab {
		errs = append(errs, fmt.Errorf("bringUp.profile: %q is not a profile; use %s (the default) or %s", b.Profile, ProfileProduction, ProfileLab))
	}
	if b.Preflight.MinCPUs < 0 {
		errs = append(errs, fmt.Errorf("bringUp.preflight.minCPUs: %d is negative; use 0 for the support matrix's minimum", b.Preflight.MinCPUs))
	}
	return errs
}

// Validate reports every problem of the bringUp section at once (the
// bring-up process checks only its own section).
func (b BringUp) Validate() error {
	if errs := b.validate(); len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}
