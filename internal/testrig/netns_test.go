package testrig

import (
	"net"
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
