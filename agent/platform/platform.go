// Package platform finds the cloud the appliance boots on and reads the
// user-data and instance facts the cloud hands the machine, the way
// cloud-init and Talos do: DMI/SMBIOS strings first, then the metadata
// service. Providers, in order of priority: Amazon EC2 (IMDSv2), OpenStack
// (config drive, then the metadata service), Google Compute Engine,
// Microsoft Azure, Hetzner Cloud. Reading is bounded in time: metadata that
// does not answer never holds the boot up, and says so on the console.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tfsite/tfsite/agent/config"
)

// Platform names, as --platform and docs/config.md spell them.
const (
	AWS       = "aws"
	OpenStack = "openstack"
	GCP       = "gcp"
	Azure     = "azure"
	Hetzner   = "hetzner"
)

// Order is the priority of detection: when DMI names no platform, the
// metadata services are probed and the first of these that answers wins.
var Order = []string{AWS, OpenStack, GCP, Azure, Hetzner}

// DefaultEndpoint is the link-local metadata service every supported cloud
// answers at.
const DefaultEndpoint = "http://169.254.169.254"

// Config configures the Reader.
type Config struct {
	// Platform is "auto" (detect; the default), "none" (read nothing), or
	// one of Order to skip detection.
	Platform string
	// Endpoint is the metadata service's base URL (default DefaultEndpoint).
	// GCE's client takes its host from GCE_METADATA_HOST instead.
	Endpoint string
	// DMIDir holds the SMBIOS strings (default /sys/class/dmi/id).
	DMIDir string
	// ByLabelDir is where an OpenStack config drive (label config-2) is
	// looked for (default /dev/disk/by-label).
	ByLabelDir string
	// Timeout bounds reading a platform DMI named (or --platform named),
	// retries included (default 30s).
	Timeout time.Duration
	// ProbeTimeout bounds probing the metadata services when DMI names no
	// platform (default 2s): on bare metal nothing answers, and boot waits
	// at most this long.
	ProbeTimeout time.Duration
	// AllowIMDSv1 lets EC2 fall back to IMDSv1 (no session token). Off by
	// default: IMDSv1 answers anyone on the instance who can make it fetch
	// a URL.
	AllowIMDSv1 bool
}

// Default returns the appliance's settings.
func Default() Config {
	return Config{Platform: "auto", Endpoint: DefaultEndpoint, DMIDir: DefaultDMIDir, Timeout: 30 * time.Second, ProbeTimeout: 2 * time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Platform != "auto" && c.Platform != "none" && !slices.Contains(Order, c.Platform) {
		errs = append(errs, fmt.Errorf("platform %q: use auto, none or one of %s", c.Platform, strings.Join(Order, ", ")))
	}
	if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("metadata endpoint %q: want a URL like %s", c.Endpoint, DefaultEndpoint))
	}
	if c.Timeout <= 0 || c.ProbeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("metadata timeouts %s and %s must be positive", c.Timeout, c.ProbeTimeout))
	}
	return errors.Join(errs...)
}

// Reader reads the platform once per process: the first complete answer
// (a platform's data, or that there is none) is kept; a platform whose
// metadata did not answer is tried again at the next Read.
type Reader struct {
	cfg    Config
	log    *slog.Logger
	notice func(string)
	fetch  map[string]fetcher

	mu   sync.Mutex
	done bool
	data *config.PlatformData
}

// fetcher reads one platform's user-data and facts; errNotHere (wrapped)
// means its metadata service is not there at all.
type fetcher func(ctx context.Context) (*config.PlatformData, error)

var errNotHere = errors.New("no such metadata service here")

var _ config.Platform = (*Reader)(nil)

// New returns a Reader. notice, if set, receives the one line an operator
// must see on the console (metadata that did not answer in time).
func New(cfg Config, log *slog.Logger, notice func(string)) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if notice == nil {
		notice = func(string) {}
	}
	r := &Reader{cfg: cfg, log: log, notice: notice}
	h := newHTTP(cfg.Endpoint)
	r.fetch = map[string]fetcher{
		AWS:       awsFetcher(cfg, h),
		OpenStack: openstackFetcher(cfg, h),
		GCP:       gcpFetcher(h),
		Azure:     azureFetcher(h),
		Hetzner:   hetznerFetcher(h),
	}
	return r, nil
}

// Read implements config.Platform.
func (r *Reader) Read(ctx context.Context) (*config.PlatformData, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return r.data, nil
	}
	d, complete, err := r.read(ctx)
	if err != nil {
		return nil, err
	}
	r.done, r.data = complete, d
	return d, nil
}

// read detects and reads; complete is false when a platform was named but
// its metadata did not answer in time.
func (r *Reader) read(ctx context.Context) (*config.PlatformData, bool, error) {
	name := r.cfg.Platform
	switch name {
	case "none":
		return nil, true, nil
	case "auto":
		name = Detect(r.cfg.DMIDir, r.cfg.ByLabelDir)
	}
	if name == "" {
		d := r.probe(ctx)
		if d != nil {
			r.log.Info("platform found by its metadata service", "platform", d.Name, "instance", d.InstanceID, "zone", d.Zone)
		}
		return d, true, nil
	}
	d, err := r.readNamed(ctx, name)
	switch {
	case errors.Is(err, config.ErrInvalid):
		return nil, false, err
	case err != nil:
		line := fmt.Sprintf("tfsite: %s metadata did not answer within %s (%v); booting without its user-data and facts", name, r.cfg.Timeout, err)
		r.log.Warn(line)
		r.notice(line)
		return nil, false, nil
	}
	r.log.Info("platform metadata read", "platform", name, "instance", d.InstanceID, "zone", d.Zone, "region", d.Region,
		"public_ipv4", d.PublicIPv4, "user_data", d.Where)
	return d, true, nil
}

// readNamed reads a platform DMI (or the operator) named, retrying until
// cfg.Timeout: at boot the metadata service may not be reachable yet.
func (r *Reader) readNamed(ctx context.Context, name string) (*config.PlatformData, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	wait := 500 * time.Millisecond
	for {
		d, err := r.fetch[name](ctx)
		if err == nil || errors.Is(err, config.ErrInvalid) {
			return d, err
		}
		r.log.Debug("platform metadata not read yet", "platform", name, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 4*time.Second)
	}
}

// probe asks every metadata service at once, within cfg.ProbeTimeout, and
// returns the first in Order that answered; nil when none did.
func (r *Reader) probe(ctx context.Context) *config.PlatformData {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ProbeTimeout)
	defer cancel()
	found := make([]*config.PlatformData, len(Order))
	var wg sync.WaitGroup
	for i, name := range Order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, err := r.fetch[name](ctx); err == nil {
				found[i] = d
			}
		}()
	}
	wg.Wait()
	for _, d := range found {
		if d != nil {
			return d
		}
	}
	return nil
}
