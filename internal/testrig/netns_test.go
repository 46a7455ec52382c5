package testrig

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestVethJoinsTwoNamespaces(t *testing.T) {
	a := NewNetns(t, "a")
	b := NewNetns(t, "b")
	Veth(t, a, "eth0", b, "eth0")
	a.Run("ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
	b.Run("ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	out := a.Run("ping", "-c1", "-W2", "192.0.2.2")
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping across veth failed: %s", out)
	}
	// Go code in Do sees the namespace's links, not the host's.
	err := a.Do(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		if len(addrs) != 1 || !addrs[0].IP.Equal(net.ParseIP("192.0.2.1")) {
			t.Errorf("addresses in netns a = %v, want 192.0.2.1", addrs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNamespaceIsDeletedAfterTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) { name = NewNetns(t, "gone").Name })
	if name == "" {
		t.Skip("inner test skipped")
	}
	out := run(t, "ip", "netns", "list")
	if strings.Contains(out, name) {
		t.Fatalf("netns %s still exists after its test ended", name)
	}
}

// Namespaces left by a test process that no longer runs (a killed run) are
// deleted by the next NewNetns; those of running processes, and names not
// made by NewNetns, are left alone.
func TestStaleNamespacesAreSwept(t *testing.T) {
	RequireRoot(t)
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for gone--; gone > 1; gone-- { // the highest PID nothing runs as
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", gone)); err != nil {
			break
		}
	}
	stale := fmt.Sprintf("tfs-stale-%d-%s", gone, shortID())
	live := fmt.Sprintf("tfs-live-%d-%s", os.Getpid(), shortID())
	foreign := "tfs-" + shortID()
	for _, n := range []string{stale, live, foreign} {
		run(t, "ip", "netns", "add", n)
		t.Cleanup(func() { deleteNetns(n) })
	}
	sweepStale()
	have := map[string]bool{}
	for _, f := range strings.Fields(run(t, "ip", "netns", "list")) {
		have[f] = true
	}
	if have[stale] {
		t.Errorf("%s (PID %d does not run) was not swept", stale, gone)
	}
	if !have[live] || !have[foreign] {
		t.Errorf("swept a namespace it must keep: %s kept %v, %s kept %v", live, have[live], foreign, have[foreign])
	}
}
