package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tfsite/tfsite/internal/testrig"
)

// fixtureHost writes a /proc + /sys tree of a host that passes every check.
func fixtureHost(t *testing.T) (string, PreflightConfig) {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/meminfo":                                "MemTotal:       65856440 kB\nMemFree:        1000 kB\n",
		"sys/devices/system/cpu/online":               "0-7\n",
		"proc/sys/kernel/osrelease":                   "6.1.0-18-amd64\n",
		"proc/swaps":                                  "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
		"proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
		"proc/filesystems":                            "nodev\tsysfs\nnodev\toverlay\n\text4\n",
		"proc/sys/net/ipv4/ip_forward":                "1\n",
	}
	for p, s := range files {
		writeTree(t, root, p, s)
	}
	if err := os.MkdirAll(filepath.Join(root, "run/containerd"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "run/containerd/containerd.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c := DefaultPreflightConfig()
	c.Root = root
	c.TFRelease = "R21.12"
	c.DiskFree = func(p string) (uint64, error) {
		if p != filepath.Join(root, "var") {
			return 0, fmt.Errorf("unexpected path %s", p)
		}
		return 200 * GB, nil
	}
	c.Version = func(_ context.Context, argv ...string) (string, error) {
		if argv[0] == "kubelet" {
			return "Kubernetes v1.21.4", nil
		}
		return "v1.21.4", nil
	}
	return root, c
}

func writeTree(t *testing.T, root, p, s string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func status(r Report, name string) Check {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return Check{}
}

func TestPreflightPassesOnGoodHost(t *testing.T) {
	_, c := fixtureHost(t)
	r, err := Preflight(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed || r.Err() != nil || len(r.Checks) != 11 {
		t.Fatalf("%+v", r)
	}
	for _, ch := range r.Checks {
		if ch.Status != StatusOK {
			t.Errorf("%s: %s %s", ch.Name, ch.Status, ch.Detail)
		}
	}
}

func TestPreflightFailuresNameRemedies(t *testing.T) {
	cases := map[string]struct {
		check  string
		mutate func(t *testing.T, root string, c *PreflightConfig)
		remedy string
	}{
		"low memory": {"memory", func(t *testing.T, root string, c *PreflightConfig) {
			writeTree(t, root, "proc/meminfo", "MemTotal:       25165824 kB\n")
		}, "--min-memory"},
		"low disk": {"disk /var", func(t *testing.T, root string, c *PreflightConfig) {
			c.DiskFree = func(string) (uint64, error) { return 20 * GB, nil }
		}, "--min-disk"},
		"few cpus": {"cpus", func(t *testing.T, root string, c *PreflightConfig) {
			writeTree(t, root, "sys/devices/system/cpu/online", "0\n")
		}, "--min-cpus"},
		"old kernel": {"kernel", func(t *testing.T, root string, c *PreflightConfig) {
			writeTree(t, root, "proc/sys/kernel/osrelease", "4.19.0-26-amd64\n")
		}, "newer kernel"},
		"swap on": {"swap", func(t *testing.T, root string, c *PreflightConfig) {
			writeTree(t, root, "proc/swaps", "Filename Type Size Used Priority\n/swapfile file 1048572 0 -2\n")
		}, "swapoff -a"},
		"no br_netfilter": {"br_netfilter", func(t *testing.T, root string, c *PreflightConfig) {
			os.RemoveAll(filepath.Join(root, "proc/sys/net/bridge"))
		}, "modprobe br_netfilter"},
		"bridge-nf off": {"br_netfilter", func(t *testing.T, root string, c *PreflightConfig) {
			writeTree(t, root, "proc/sys/net/bridge/bridge-nf-call-iptables", "0\n")
		}, "bridge-nf-call-iptables=1"},
		"no overlay": {"overlay", func(t *testing.T, root string, c *PreflightConfig) {
			writeTree(t, root, "proc/filesystems", "nodev\tsysfs\n\text4\n")
		}, "modprobe overlay"},
		"no forwarding": {"ip_forward", func(t *testing.T, root string, c *PreflightConfig) {
			writeTree(t, root, "proc/sys/net/ipv4/ip_forward", "0\n")
		}, "ip_forward=1"},
		"no runtime": {"container runtime", func(t *testing.T, root string, c *PreflightConfig) {
			c.CRISocket = "unix:///run/crio/crio.sock"
		}, "containerd"},
		"runtime not a socket": {"container runtime", func(t *testing.T, root string, c *PreflightConfig) {
			writeTree(t, root, "run/fake.sock", "")
			c.CRISocket = "unix:///run/fake.sock"
		}, "--cri-socket"},
		"kubeadm missing": {"kubeadm", func(t *testing.T, root string, c *PreflightConfig) {
			c.Version = func(_ context.Context, argv ...string) (string, error) {
				if argv[0] == "kubeadm" {
					return "", errors.New("exec: not found")
				}
				return "Kubernetes v1.21.4", nil
			}
		}, "hack/build-kube.sh"},
		"kubelet too old": {"kubelet", func(t *testing.T, root string, c *PreflightConfig) {
			c.Version = func(_ context.Context, argv ...string) (string, error) {
				if argv[0] == "kubelet" {
					return "Kubernetes v1.12.10", nil
				}
				return "v1.21.4", nil
			}
		}, "--tf-release"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root, c := fixtureHost(t)
			tc.mutate(t, root, &c)
			r, err := Preflight(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			ch := status(r, tc.check)
			if ch.Status != StatusFail || !strings.Contains(ch.Remedy, tc.remedy) {
				t.Fatalf("%s: %+v, want fail with remedy mentioning %q", tc.check, ch, tc.remedy)
			}
			if r.Passed || !errors.Is(r.Err(), ErrPreflightFailed) || !strings.Contains(r.Err().Error(), tc.check) {
				t.Fatalf("report passed or error lacks %s: %v", tc.check, r.Err())
			}
			for _, other := range r.Checks {
				if other.Name != tc.check && other.Status == StatusFail {
					t.Errorf("unrelated check failed: %+v", other)
				}
			}
		})
	}
}

func TestPreflightThresholdsConfigurable(t *testing.T) {
	root, c := fixtureHost(t)
	writeTree(t, root, "proc/meminfo", "MemTotal:       25165824 kB\n") // 24 GiB
	c.MinMemory = 16 * GiB
	c.DiskFree = func(string) (uint64, error) { return 20 * GB, nil }
	c.MinDisk = 10 * GB
	r, _ := Preflight(context.Background(), c)
	if !r.Passed {
		t.Fatalf("lowered thresholds still fail: %v", r.Err())
	}
}

func TestPreflightConfigValidate(t *testing.T) {
	c := DefaultPreflightConfig()
	c.Root, c.MinKernel, c.CRISocket, c.TFRelease = "", "five", "/run/x.sock", "R99"
	_, err := Preflight(context.Background(), c)
	for _, want := range []string{"root", "min-kernel", "cri-socket", "R99"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-3": 4, "0-3,6,8-9": 7} {
		if n, err := parseCPUList(in); err != nil || n != want {
			t.Errorf("%q: %d %v", in, n, err)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "1-"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestPreflightRealHost runs against this machine's /proc and /sys and the
// real kubeadm, and checks the report agrees with what the kernel says through
// other interfaces (sysinfo, uname).
func TestPreflightRealHost(t *testing.T) {
	c := DefaultPreflightConfig()
	kubeadm := testrig.KubeBin(t, KubernetesVersion, "kubeadm")
	c.Kubeadm = kubeadm
	r, err := Preflight(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	total := uint64(si.Totalram) * uint64(si.Unit)
	mem := status(r, "memory")
	if (total >= c.MinMemory) != (mem.Status == StatusOK) || !strings.Contains(mem.Detail, human(total)) {
		t.Errorf("memory check %+v disagrees with sysinfo total %s", mem, human(total))
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	if k := status(r, "kernel"); !strings.Contains(k.Detail, unix.ByteSliceToString(uts.Release[:])) {
		t.Errorf("kernel check %+v, uname says %s", k, unix.ByteSliceToString(uts.Release[:]))
	}
	if cpus := status(r, "cpus"); runtime.NumCPU() > 0 && !strings.Contains(cpus.Detail, "online") {
		t.Errorf("cpus: %+v", cpus)
	}
	if kc := status(r, "kubeadm"); kc.Status != StatusWarn || !strings.Contains(kc.Detail, KubernetesVersion) {
		t.Errorf("real kubeadm %s: %+v (want warn: tfsite-tested, not published for %s)", KubernetesVersion, kc, DefaultTFTag)
	}
	for _, ch := range r.Checks {
		if ch.Detail == "" || ch.Status == StatusFail && ch.Remedy == "" {
			t.Errorf("check without detail or remedy: %+v", ch)
		}
		t.Logf("%-18s %-4s %s", ch.Name, ch.Status, ch.Detail)
	}
	if r.Passed != (r.Err() == nil) {
		t.Fatal("Passed and Err disagree")
	}
}
