package underlay

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// fakeHost offers links whose "wire" is a socketpair to a real in-process
// server4 (nil server: nobody answers), and records Apply calls.
type fakeHost struct {
	t       *testing.T
	links   []Link
	servers map[string]*dhcpServer
	mu      sync.Mutex
	applied []string
}

func (h *fakeHost) Links() ([]Link, error) { return h.links, nil }

func (h *fakeHost) Open(l Link) (net.PacketConn, error) {
	s := h.servers[l.Name]
	if s == nil {
		s = &dhcpServer{silent: true}
	}
	return newServer(h.t, s), nil
}

func (h *fakeHost) Apply(l Link, lease *Lease) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applied = append(h.applied, l.Name+" "+lease.Address.String())
	return nil
}

func link(name string, mac byte) Link {
	return Link{Name: name, Index: int(mac), MAC: net.HardwareAddr{2, 0, 0, 0, 0, mac}, Up: true, Kind: "device"}
}

func answering(gw string) *dhcpServer {
	return &dhcpServer{reply: []dhcpv4.Option{mask(24), routers(gw)}}
}

func TestDiscoverNamedInterface(t *testing.T) {
	eth0 := link("eth0", 1)
	eth0.HasDefault, eth0.DefaultVia = true, "192.0.2.1"
	h := &fakeHost{t: t, links: []Link{eth0}, servers: map[string]*dhcpServer{"eth0": answering("192.0.2.1")}}
	res, err := discover(context.Background(), h, Options{Iface: "eth0", Timeout: 2 * time.Second}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface != "eth0" || res.MAC != "02:00:00:00:00:01" || res.Address != "192.0.2.10/24" ||
		res.Gateway != "192.0.2.1" || res.GatewaySource != SourceOption3 || !res.Agrees || res.KernelDefaultRoute != "192.0.2.1" {
		t.Fatalf("result %+v", res)
	}
	if len(h.applied) != 0 {
		t.Fatalf("applied %v without Apply", h.applied)
	}
	res, err = discover(context.Background(), h, Options{Iface: "eth0", Timeout: 2 * time.Second, Apply: true}, testLog(t))
	if err != nil || len(h.applied) != 1 || h.applied[0] != "eth0 192.0.2.10/24" {
		t.Fatalf("Apply: res %+v err %v applied %v", res, err, h.applied)
	}
}

func TestDiscoverNamedErrors(t *testing.T) {
	down := link("eth1", 2)
	down.Up = false
	h := &fakeHost{t: t, links: []Link{link("eth0", 1), down, {Name: "tun0", Up: true}}}
	for _, tc := range []struct {
		iface string
		want  error
	}{{"eth9", ErrNoInterface}, {"eth1", ErrLinkDown}, {"tun0", ErrNoInterface}, {"", ErrInvalidOptions}} {
		_, err := discover(context.Background(), h, Options{Iface: tc.iface, Timeout: time.Second}, testLog(t))
		if !errors.Is(err, tc.want) || (tc.iface != "" && !strings.HasPrefix(err.Error(), tc.iface+": ")) {
			t.Errorf("%q: err = %v, want %v naming the interface", tc.iface, err, tc.want)
		}
	}
}

// TestDiscoverAutoPicksAnsweredLink: eth0 sorts first but gets no answer,
// eth1 answers: auto waits for eth0 to fail, then picks eth1.
func TestDiscoverAutoPicksAnsweredLink(t *testing.T) {
	h := &fakeHost{t: t, links: []Link{link("eth0", 1), link("eth1", 2)},
		servers: map[string]*dhcpServer{"eth1": answering("192.0.2.1")}}
	start := time.Now()
	res, err := discover(context.Background(), h, Options{Iface: IfaceAuto, Timeout: time.Second}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface != "eth1" {
		t.Fatalf("picked %s, want eth1", res.Interface)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s, want within the 1s timeout", d)
	}
}

// TestDiscoverAutoPrefersDefaultRouteLink: both answer; eth1 holds the
// kernel's default route, so it wins over eth0.
func TestDiscoverAutoPrefersDefaultRouteLink(t *testing.T) {
	eth1 := link("eth1", 2)
	eth1.HasDefault, eth1.DefaultVia = true, "192.0.2.9"
	h := &fakeHost{t: t, links: []Link{link("eth0", 1), eth1},
		servers: map[string]*dhcpServer{"eth0": answering("192.0.2.1"), "eth1": answering("192.0.2.1")}}
	res, err := discover(context.Background(), h, Options{Iface: IfaceAuto, Skip: []string{"eth9"}, Timeout: 2 * time.Second}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface != "eth1" || res.Agrees || res.KernelDefaultRoute != "192.0.2.9" {
		t.Fatalf("result %+v, want eth1 disagreeing with the kernel's 192.0.2.9", res)
	}
	// Skipping eth1 leaves eth0.
	res, err = discover(context.Background(), h, Options{Iface: IfaceAuto, Skip: []string{"eth1"}, Timeout: 2 * time.Second}, testLog(t))
	if err != nil || res.Interface != "eth0" {
		t.Fatalf("with eth1 skipped: %+v %v", res, err)
	}
}

func TestDiscoverAutoAllFail(t *testing.T) {
	h := &fakeHost{t: t, links: []Link{link("eth0", 1), link("eth1", 2)},
		servers: map[string]*dhcpServer{"eth1": {reply: []dhcpv4.Option{mask(24)}}}}
	_, err := discover(context.Background(), h, Options{Iface: IfaceAuto, Timeout: time.Second}, testLog(t))
	if !errors.Is(err, ErrNoResponse) || !errors.Is(err, ErrNoGateway) {
		t.Fatalf("err = %v, want both eth0's ErrNoResponse and eth1's ErrNoGateway", err)
	}
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "eth0: ") || !strings.Contains(err.Error(), "eth1: ") {
		t.Fatalf("err %q: want one line naming both interfaces", err)
	}
	h.links = []Link{{Name: "lo", Loopback: true, Up: true}}
	if _, err := discover(context.Background(), h, Options{Iface: IfaceAuto}, testLog(t)); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("no candidates: err = %v, want ErrNoInterface", err)
	}
}
