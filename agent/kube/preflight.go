package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Status of one preflight check.
type Status string

const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
)

// Check is one preflight result. A failed check always names its remedy.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Remedy string `json:"remedy,omitempty"`
}

// Report is the outcome of Preflight.
type Report struct {
	TFRelease string  `json:"tfRelease"`
	Checks    []Check `json:"checks"`
	Passed    bool    `json:"passed"`
}

// ErrPreflightFailed is returned by Report.Err when a check failed.
var ErrPreflightFailed = errors.New("preflight failed")

// Err is nil when no check failed, else ErrPreflightFailed naming the failures.
func (r Report) Err() error {
	var names []string
	for _, c := range r.Checks {
		if c.Status == StatusFail {
			names = append(names, c.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrPreflightFailed, strings.Join(names, ", "))
}

// PreflightConfig sets thresholds and the seams tests replace.
type PreflightConfig struct {
	// Root is where /proc and /sys are read from ("/" on a host, a fixture tree in tests).
	Root string
	// MinMemory in bytes, MinDisk in bytes free on DiskPath, MinCPUs, MinKernel ("5.4").
	MinMemory uint64
	MinDisk   uint64
	DiskPath  string
	MinCPUs   int
	MinKernel string
	// CRISocket is the container runtime's unix socket URL.
	CRISocket string
	// TFRelease selects the support-matrix row kubeadm/kubelet are checked against.
	TFRelease string
	Matrix    SupportMatrix
	// Kubeadm and Kubelet are the binaries whose versions are checked.
	Kubeadm, Kubelet string
	// DiskFree returns the bytes available to unprivileged users under path.
	DiskFree func(path string) (uint64, error)
	// Version runs a binary's version command and returns its output.
	Version func(ctx context.Context, argv ...string) (string, error)
}

// GiB and GB for thresholds.
const (
	GiB = uint64(1) << 30
	GB  = uint64(1000 * 1000 * 1000)
)

// DefaultPreflightConfig returns the thresholds of the embedded support matrix.
func DefaultPreflightConfig() PreflightConfig {
	m := DefaultSupportMatrix()
	return PreflightConfig{
		Root:      "/",
		MinMemory: m.Host.MinMemoryGiB * GiB,
		MinDisk:   m.Host.MinDiskGB * GB,
		DiskPath:  "/var",
		MinCPUs:   m.Host.MinCPUs,
		MinKernel: m.Host.MinKernel,
		CRISocket: DefaultCRISocket,
		TFRelease: DefaultTFTag,
		Matrix:    m,
		Kubeadm:   "kubeadm",
		Kubelet:   "kubelet",
		DiskFree:  diskFree,
		Version:   runVersion,
	}
}

// Validate reports every configuration problem at once.
func (c PreflightConfig) Validate() error {
	var errs []error
	if c.Root == "" {
		errs = append(errs, errors.New("root: must be set (\"/\" on a host)"))
	}
	if c.MinCPUs < 0 {
		errs = append(errs, errors.New("min-cpus: must not be negative"))
	}
	if _, _, ok := parseMinor(c.MinKernel); !ok {
		errs = append(errs, fmt.Errorf("min-kernel %q: want MAJOR.MINOR like 5.4", c.MinKernel))
	}
	if !strings.HasPrefix(c.CRISocket, "unix:///") {
		errs = append(errs, fmt.Errorf("cri-socket %q: want unix:///path", c.CRISocket))
	}
	if _, err := c.Matrix.Release(c.TFRelease); err != nil {
		errs = append(errs, fmt.Errorf("tf-release: %w", err))
	}
	if c.DiskFree == nil || c.Version == nil {
		errs = append(errs, errors.New("DiskFree and Version must be set (use DefaultPreflightConfig)"))
	}
	return errors.Join(errs...)
}

func runVersion(ctx context.Context, argv ...string) (string, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	return strings.TrimSpace(string(out)), err
}

func (c PreflightConfig) path(p string) string { return filepath.Join(c.Root, p) }

func (c PreflightConfig) read(p string) (string, error) {
	b, err := os.ReadFile(c.path(p))
	return strings.TrimSpace(string(b)), err
}

// Preflight runs every check; it changes nothing on the host.
func Preflight(ctx context.Context, c PreflightConfig) (Report, error) {
	if err := c.Validate(); err != nil {
		return Report{}, fmt.Errorf("preflight config: %w", err)
	}
	rel, _ := c.Matrix.Release(c.TFRelease)
	r := Report{TFRelease: c.TFRelease}
	r.Checks = append(r.Checks,
		c.checkMemory(), c.checkDisk(), c.checkCPUs(), c.checkKernel(), c.checkSwap(),
		c.checkBrNetfilter(), c.checkOverlay(), c.checkIPForward(), c.checkCRI(),
		c.checkVersion(ctx, rel, "kubeadm", c.Kubeadm, "version", "-o", "short"),
		c.checkVersion(ctx, rel, "kubelet", c.Kubelet, "--version"),
	)
	r.Passed = r.Err() == nil
	return r, nil
}

func fail(name, detail, remedy string) Check {
	return Check{Name: name, Status: StatusFail, Detail: detail, Remedy: remedy}
}
func ok(name, detail string) Check { return Check{Name: name, Status: StatusOK, Detail: detail} }

func human(b uint64) string {
	switch {
	case b >= GiB:
		return fmt.Sprintf("%.1f GiB", float64(b)/float64(GiB))
	default:
		return fmt.Sprintf("%d MiB", b>>20)
	}
}

func (c PreflightConfig) checkMemory() Check {
	const name = "memory"
	s, err := c.read("proc/meminfo")
	if err != nil {
		return fail(name, "cannot read /proc/meminfo: "+err.Error(), "run on Linux with /proc mounted")
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				break
			}
			total := kb * 1024
			if total < c.MinMemory {
				return fail(name, fmt.Sprintf("%s total, need %s", human(total), human(c.MinMemory)),
					"give the machine more RAM (TF's config and analytics databases need it), or lower the bar with --min-memory")
			}
			return ok(name, fmt.Sprintf("%s total (need %s)", human(total), human(c.MinMemory)))
		}
	}
	return fail(name, "/proc/meminfo has no MemTotal line", "run on Linux with /proc mounted")
}

func (c PreflightConfig) checkDisk() Check {
	name := "disk " + c.DiskPath
	free, err := c.DiskFree(c.path(c.DiskPath))
	if err != nil {
		return fail(name, "cannot stat "+c.DiskPath+": "+err.Error(), "create "+c.DiskPath+" on a filesystem with enough space")
	}
	if free < c.MinDisk {
		return fail(name, fmt.Sprintf("%.1f GB free, need %.1f GB", float64(free)/float64(GB), float64(c.MinDisk)/float64(GB)),
			"free space or grow the filesystem holding "+c.DiskPath+" (images, etcd and TF's Cassandra live there), or lower the bar with --min-disk")
	}
	return ok(name, fmt.Sprintf("%.1f GB free (need %.1f GB)", float64(free)/float64(GB), float64(c.MinDisk)/float64(GB)))
}

// parseCPUList counts CPUs in a list like "0-3,6".
func parseCPUList(s string) (int, error) {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("bad cpu list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("bad cpu list %q", s)
			}
		}
		n += b - a + 1
	}
	if n == 0 {
		return 0, fmt.Errorf("empty cpu list")
	}
	return n, nil
}

func (c PreflightConfig) checkCPUs() Check {
	const name = "cpus"
	s, err := c.read("sys/devices/system/cpu/online")
	if err != nil {
		return fail(name, "cannot read /sys/devices/system/cpu/online: "+err.Error(), "run on Linux with /sys mounted")
	}
	n, err := parseCPUList(s)
	if err != nil {
		return fail(name, err.Error(), "run on Linux with /sys mounted")
	}
	if n < c.MinCPUs {
		return fail(name, fmt.Sprintf("%d online, need %d", n, c.MinCPUs), "give the machine more CPUs, or lower the bar with --min-cpus")
	}
	return ok(name, fmt.Sprintf("%d online (need %d)", n, c.MinCPUs))
}

func (c PreflightConfig) checkKernel() Check {
	const name = "kernel"
	rel, err := c.read("proc/sys/kernel/osrelease")
	if err != nil {
		return fail(name, "cannot read /proc/sys/kernel/osrelease: "+err.Error(), "run on Linux with /proc mounted")
	}
	maj, min, okv := parseMinor(rel)
	wmaj, wmin, _ := parseMinor(c.MinKernel)
	if !okv {
		return fail(name, "cannot parse kernel release "+rel, "boot a kernel with a MAJOR.MINOR release")
	}
	if maj < wmaj || maj == wmaj && min < wmin {
		return fail(name, fmt.Sprintf("%s, need %s or newer", rel, c.MinKernel), "boot a newer kernel (kubeadm supports 5.4, 5.10, 5.15 and 6.x)")
	}
	return ok(name, fmt.Sprintf("%s (need %s)", rel, c.MinKernel))
}

func (c PreflightConfig) checkSwap() Check {
	const name = "swap"
	s, err := c.read("proc/swaps")
	if err != nil {
		return fail(name, "cannot read /proc/swaps: "+err.Error(), "run on Linux with /proc mounted")
	}
	lines := strings.Split(s, "\n")
	var active []string
	for _, l := range lines[1:] { // first line is the header
		if f := strings.Fields(l); len(f) > 0 {
			active = append(active, f[0])
		}
	}
	if len(active) > 0 {
		return fail(name, "swap is on: "+strings.Join(active, ", "),
			"run `swapoff -a` and remove swap entries from /etc/fstab (kubelet refuses to run with swap by default)")
	}
	return ok(name, "off")
}

func (c PreflightConfig) checkBrNetfilter() Check {
	const name = "br_netfilter"
	v, err := c.read("proc/sys/net/bridge/bridge-nf-call-iptables")
	if errors.Is(err, fs.ErrNotExist) {
		return fail(name, "module not loaded (/proc/sys/net/bridge missing)",
			"`modprobe br_netfilter` and add it to /etc/modules-load.d/k8s.conf")
	}
	if err != nil {
		return fail(name, err.Error(), "`modprobe br_netfilter`")
	}
	if v != "1" {
		return fail(name, "net.bridge.bridge-nf-call-iptables = "+v,
			"`sysctl -w net.bridge.bridge-nf-call-iptables=1` and persist it in /etc/sysctl.d/k8s.conf")
	}
	return ok(name, "loaded, bridge-nf-call-iptables = 1")
}

func (c PreflightConfig) checkOverlay() Check {
	const name = "overlay"
	s, err := c.read("proc/filesystems")
	if err != nil {
		return fail(name, "cannot read /proc/filesystems: "+err.Error(), "run on Linux with /proc mounted")
	}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[len(f)-1] == "overlay" {
			return ok(name, "overlay filesystem available")
		}
	}
	return fail(name, "overlay filesystem not available", "`modprobe overlay` and add it to /etc/modules-load.d/k8s.conf")
}

func (c PreflightConfig) checkIPForward() Check {
	const name = "ip_forward"
	v, err := c.read("proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return fail(name, "cannot read net.ipv4.ip_forward: "+err.Error(), "run on Linux with /proc mounted")
	}
	if v != "1" {
		return fail(name, "net.ipv4.ip_forward = "+v, "`sysctl -w net.ipv4.ip_forward=1` and persist it in /etc/sysctl.d/k8s.conf")
	}
	return ok(name, "net.ipv4.ip_forward = 1")
}

func (c PreflightConfig) checkCRI() Check {
	const name = "container runtime"
	sock := strings.TrimPrefix(c.CRISocket, "unix://")
	st, err := os.Stat(c.path(sock))
	switch {
	case err != nil:
		return fail(name, sock+" missing", "install and start containerd (`apt-get install containerd && systemctl enable --now containerd`) or pass --cri-socket")
	case st.Mode().Type() != fs.ModeSocket:
		return fail(name, sock+" is not a socket", "start the container runtime, or pass its socket with --cri-socket")
	}
	return ok(name, sock)
}

func (c PreflightConfig) checkVersion(ctx context.Context, rel Release, name, bin string, args ...string) Check {
	out, err := c.Version(ctx, append([]string{bin}, args...)...)
	if err != nil {
		return fail(name, fmt.Sprintf("cannot run %s: %v", bin, err),
			"install "+name+" "+KubernetesVersion+" (hack/build-kube.sh builds it) and put it on PATH")
	}
	v := strings.TrimSpace(string(bytes.TrimPrefix([]byte(out), []byte("Kubernetes "))))
	switch rel.Supports(v) {
	case Published:
		return ok(name, v+" (published for TF "+rel.Name+")")
	case TfsiteTested:
		return Check{Name: name, Status: StatusWarn,
			Detail: v + " runs tfsite's TF manifest (tested) but TF " + rel.Name + " only published " + strings.Join(rel.Published, ", ")}
	}
	return fail(name, fmt.Sprintf("%s is not supported for TF %s (published %s, tfsite-tested %s)", v, rel.Name,
		strings.Join(rel.Published, ", "), strings.Join(rel.TfsiteTested, ", ")),
		"install "+name+" "+KubernetesVersion+" (hack/build-kube.sh) or choose another --tf-release")
}
