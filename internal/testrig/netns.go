package testrig

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/tfsite/tfsite/internal/lab"
)

var lookPath = exec.LookPath

// Netns is a named network namespace (ip netns) owned by one test.
type Netns struct {
	Name string
	t    testing.TB
}

// shortID returns 6 random hex characters, to keep names unique across
// parallel tests and crashed earlier runs while fitting IFNAMSIZ.
func shortID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewNetns creates a fresh namespace with loopback up; it is deleted (with
// everything in it, processes included) when the test ends. Its name carries
// the test process's PID, so namespaces that a killed test run left behind
// are swept by the next run (sweepStale).
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	RequireRoot(t)
	sweepOnce.Do(sweepStale)
	name := fmt.Sprintf("tfs-%s-%d-%s", prefix, os.Getpid(), shortID())
	if err := lab.CreateNetns(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNetns(name) })
	return &Netns{Name: name, t: t}
}

// deleteNetns kills whatever runs in the namespace, then deletes it.
func deleteNetns(name string) { lab.DeleteNetns(name) }

var sweepOnce sync.Once

// sweepStale deletes the namespaces of test processes that no longer run:
// names tfs-PREFIX-PID-ID whose PID is gone (a run killed before its
// cleanups). Namespaces of test binaries still running (other packages run
// in parallel) are left alone.
func sweepStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if pid, ok := ownerPID(f[0]); ok {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, fs.ErrNotExist) {
				deleteNetns(f[0])
			}
		}
	}
}

// ownerPID returns the test process PID in a namespace name made by NewNetns.
func ownerPID(name string) (int, bool) {
	parts := strings.Split(name, "-")
	if len(parts) < 4 || parts[0] != "tfs" {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	return pid, err == nil && pid > 0
}

// Command returns an exec.Cmd that runs argv inside the namespace.
func (n *Netns) Command(argv ...string) *exec.Cmd { return lab.Command(n.Name, argv...) }

// Run runs argv inside the namespace and fails the test on error; it returns stdout.
func (n *Netns) Run(argv ...string) string {
	n.t.Helper()
	return runCmd(n.t, n.Command(argv...))
}

// Do runs f on a locked OS thread switched into the namespace, so Go code
// (netlink, raw sockets) sees the namespace as its own. Sockets opened inside
// f stay in the namespace after Do returns.
func (n *Netns) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is not unlocked: it ends with the goroutine, so it never
		// returns to the pool while in a foreign namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("getting current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(n.Name)
		if err != nil {
			errc <- fmt.Errorf("opening netns %s: %w", n.Name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("entering netns %s: %w", n.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Veth joins namespace a (interface aName) to namespace b (interface bName),
// both ends up. Interface names must fit 15 bytes.
func Veth(t testing.TB, a *Netns, aName string, b *Netns, bName string) {
	t.Helper()
	if err := lab.Veth("v"+shortID(), a.Name, aName, b.Name, bName); err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, argv ...string) string {
	t.Helper()
	return runCmd(t, exec.Command(argv[0], argv[1:]...))
}

func runCmd(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String()
}
