// Package update drives the appliance's A/B updates with systemd-sysupdate:
// the next version's root filesystem goes into the free root slot and its
// UKI into the ESP with three boot tries; the running version is never
// touched. The definitions ship in /usr/lib/sysupdate.d; this package points
// their sources at where the operator's update is (a directory or a URL),
// runs sysupdate, and reports what it did. Sysupdate always reads a URL and
// verifies as it writes (SHA256SUMS's signature against
// /etc/systemd/import-pubring.gpg, each file's hash); a directory is checked
// first by Verify, for a clear refusal before anything is written.
package update

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/tfsite/tfsite/internal/oneline"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// Defaults of the appliance.
const (
	DefaultDefinitions = "/usr/lib/sysupdate.d"
	DefaultRunDir      = "/run/tfsite/sysupdate.d"
	DefaultSysupdate   = "/usr/lib/systemd/systemd-sysupdate"
)

// ErrNothingNewer means the source holds no version newer than the running one.
var ErrNothingNewer = errors.New("no newer version")

// Config says where the update comes from and where the tools are.
type Config struct {
	// From is a directory or an http(s) URL holding the update's files
	// (tfsite_<v>.root.raw.gz, tfsite_<v>.efi, SHA256SUMS, SHA256SUMS.gpg).
	From        string
	Definitions string
	RunDir      string
	Sysupdate   string
	// Keyring is what Verify checks a directory against before sysupdate
	// runs (sysupdate itself always uses DefaultKeyring); tests change it.
	Keyring string
}

// Default returns the appliance's paths; From is empty.
func Default() Config {
	return Config{Definitions: DefaultDefinitions, RunDir: DefaultRunDir, Sysupdate: DefaultSysupdate,
		Keyring: DefaultKeyring}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	switch u, err := url.Parse(c.From); {
	case c.From == "":
		errs = append(errs, errors.New("--from is empty: give the directory or http(s) URL holding the update"))
	case err == nil && (u.Scheme == "http" || u.Scheme == "https"):
	case err == nil && u.Scheme != "":
		errs = append(errs, fmt.Errorf("--from %q: only directories and http(s) URLs", c.From))
	default:
		if fi, err := os.Stat(c.From); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("--from %q is not a directory (mount the update disk first?)", c.From))
		}
	}
	for name, p := range map[string]string{"definitions": c.Definitions, "run dir": c.RunDir, "systemd-sysupdate": c.Sysupdate} {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", name, p))
		}
	}
	return errors.Join(errs...)
}

// Result is what an update did.
type Result struct {
	// Running is the version this system runs (IMAGE_VERSION).
	Running string
	// Version is the version installed.
	Version string
	// Slot is the root partition it went into (e.g. /dev/vda3).
	Slot string
}

// prepare writes the definitions of defsDir into runDir with their [Source]
// pointed at url (Type=url-file) and Verify=yes, and returns runDir.
func prepare(defsDir, runDir, url string) (string, error) {
	defs, err := filepath.Glob(filepath.Join(defsDir, "*.conf"))
	if err != nil || len(defs) == 0 {
		return "", fmt.Errorf("no sysupdate definitions in %s: is this the appliance image?", defsDir)
	}
	if err := os.RemoveAll(runDir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return "", err
	}
	for _, d := range defs {
		b, err := readlimit.File(d, "sysupdate definition", 64<<10)
		if err != nil {
			return "", err
		}
		out, err := pointSource(b, url)
		if err != nil {
			return "", fmt.Errorf("%s: %w", d, err)
		}
		if err := os.WriteFile(filepath.Join(runDir, filepath.Base(d)), out, 0o644); err != nil {
			return "", err
		}
	}
	return runDir, nil
}

// pointSource rewrites the Type= and Path= of a definition's [Source]
// section to url, and its Verify= to yes whatever the shipped file says.
func pointSource(def []byte, url string) ([]byte, error) {
	var out bytes.Buffer
	section := ""
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(def))
	for sc.Scan() {
		line := sc.Text()
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = t
		}
		if section == "[Transfer]" && strings.HasPrefix(t, "Verify=") {
			line = "Verify=yes"
		}
		if section == "[Source]" {
			switch {
			case strings.HasPrefix(t, "Type="):
				line, seen["Type"] = "Type=url-file", true
			case strings.HasPrefix(t, "Path="):
				line, seen["Path"] = "Path="+url, true
			}
		}
		out.WriteString(line + "\n")
	}
	if !seen["Type"] || !seen["Path"] {
		return nil, errors.New("its [Source] has no Type= or Path= to point at the update")
	}
	return out.Bytes(), sc.Err()
}

// Runner runs systemd-sysupdate.
type Runner struct {
	cfg Config
	log *slog.Logger
	// Progress, if set, receives sysupdate's output lines as they come.
	Progress func(string)

	lines []string // sysupdate's messages of the last run
}

// New returns a Runner for cfg.
func New(cfg Config, log *slog.Logger) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, log: log}, nil
}

// Run installs the newest version in cfg.From beside the running one.
// ErrNothingNewer when there is none; the error of a failed verification
// or write is sysupdate's, on one line.
func (r *Runner) Run(ctx context.Context) (Result, error) {
	res := Result{Running: runningVersion()}
	url := r.cfg.From
	if !isURL(url) {
		if err := Verify(ctx, r.cfg.From, r.cfg.Keyring); err != nil {
			return res, err
		}
		served, stop, err := serveDir(r.cfg.From, r.log)
		if err != nil {
			return res, err
		}
		defer stop()
		url = served
	}
	defs, err := prepare(r.cfg.Definitions, r.cfg.RunDir, url)
	if err != nil {
		return res, err
	}
	// check-new prints the newest version the source holds, or exits 1
	// with nothing printed when none is newer than what is installed.
	out, err := r.sysupdate(ctx, defs, "check-new")
	res.Version = lastWord(out)
	switch {
	case err != nil && res.Version == "":
		return res, fmt.Errorf("%w than %s in %s (systemd-sysupdate: %v)", ErrNothingNewer, res.Running, r.cfg.From, err)
	case err != nil:
		return res, fmt.Errorf("looking for a newer version in %s: %w", r.cfg.From, err)
	case res.Version == "" || res.Version == res.Running:
		return res, fmt.Errorf("%w than %s in %s", ErrNothingNewer, res.Running, r.cfg.From)
	}
	r.lines = nil
	if _, err := r.sysupdate(ctx, defs, "update", res.Version); err != nil {
		return res, fmt.Errorf("installing %s from %s: %w", res.Version, r.cfg.From, err)
	}
	res.Slot = partitionWritten(r.lines)
	return res, nil
}

func (r *Runner) sysupdate(ctx context.Context, defs string, args ...string) (string, error) {
	argv := append([]string{"--definitions=" + defs, "--no-pager"}, args...)
	cmd := exec.CommandContext(ctx, r.cfg.Sysupdate, argv...)
	var out bytes.Buffer
	cmd.Stdout = &out
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = pw
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if r.Progress != nil {
				r.Progress(sc.Text())
			}
		}
	}()
	r.log.Info("running systemd-sysupdate", "args", strings.Join(argv, " "))
	err = cmd.Run()
	pw.Close()
	<-done
	pr.Close()
	r.lines = append(r.lines, lines...)
	if err != nil {
		last := slices.DeleteFunc(lines, func(s string) bool { return strings.TrimSpace(s) == "" })
		msg := err.Error()
		if len(last) > 0 {
			msg = last[len(last)-1]
		}
		return out.String(), errors.New(oneline.Of(msg))
	}
	return out.String(), nil
}

// rePartition is sysupdate's line for the root filesystem it wrote.
var rePartition = regexp.MustCompile(`Successfully installed '.*' \((?:url|regular)-file\) as '(/dev/[^']+)' \(partition\)`)

// partitionWritten is the partition sysupdate reports writing ("" if none).
func partitionWritten(lines []string) string {
	for _, l := range lines {
		if m := rePartition.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	return ""
}

// runningVersion is IMAGE_VERSION from os-release ("" if unset).
func runningVersion() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := readlimit.File(p, "os-release", 64<<10)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "IMAGE_VERSION="); ok {
				return strings.Trim(v, `"'`)
			}
		}
		return ""
	}
	return ""
}

func lastWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }
