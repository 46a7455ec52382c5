package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tfsite/tfsite/recovery/netguard"
)

// validate reports every problem of the bringUp section, one line each. The
// section is checked even when bring-up is off, so a typo is found before
// someone turns it on.
// Validate reports every problem of the bringUp section at once (the
// bring-up process checks only its own section).
func (b BringUp) Validate() error {
	if errs := b.validate(); len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

func (b BringUp) validate() []error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("bringUp.%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if !strings.HasPrefix(b.Kubeconfig, "/") {
		add("kubeconfig", "%q must be an absolute path (default %s)", b.Kubeconfig, DefaultKubeconfig)
	}
	if strings.TrimSpace(b.Kubeadm) == "" {
		add("kubeadm", "empty; name the kubeadm binary (default kubeadm, found on PATH)")
	}
	for i, a := range b.KubeadmArgs {
		if a == "--config" || strings.HasPrefix(a, "--config=") {
			add(fmt.Sprintf("kubeadmArgs[%d]", i), "%q: the agent renders and passes --config itself; remove it", a)
		}
	}
	if b.ConfigAPI != "" {
		u, err := url.Parse(b.ConfigAPI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("configAPI", "%q is not an http(s) URL; use e.g. http://10.0.0.1:8082, or leave it empty for the underlay address", b.ConfigAPI)
		}
	}
	if time.Duration(b.GuardWindow) < time.Second {
		add("guardWindow", "%s is too short; use at least \"1s\" (default \"10s\")", time.Duration(b.GuardWindow))
	}
	if v := time.Duration(b.VrouterStart); v < 0 || v > 24*time.Hour {
		add("vrouterStart", "%s is out of range; use up to \"24h\" (default \"15m\": TF's images are large), or \"0s\" in labs without a vrouter", v)
	}
	if g := time.Duration(b.GuardWindow); g > time.Hour {
		add("guardWindow", "%s is too long; use at most \"1h\" (default \"10s\")", g)
	}
	if time.Duration(b.Interval) < time.Second {
		add("interval", "%s is too short; use at least \"1s\" (default \"30s\")", time.Duration(b.Interval))
	}
	for i, t := range b.ProbeTargets {
		if _, err := netguard.ParseTarget(t); err != nil {
			add(fmt.Sprintf("probeTargets[%d]", i), "%v", err)
		}
	}
	if b.Preflight.MinCPUs < 0 {
		add("preflight.minCPUs", "%d is negative; use 0 for the support matrix's minimum", b.Preflight.MinCPUs)
	}
	return errs
}
