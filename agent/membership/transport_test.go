package membership

import (
	"io"
	stdlog "log"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/sys/unix"
)

// silentPeer listens on 127.0.0.1 with a full accept queue: the kernel
// drops further SYNs, so a connect to it hangs like one to a site that is
// down, until the dialer gives up.
func silentPeer(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
	// Fill the queue (backlog 0 holds one connection), then check that
	// the next connect hangs.
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c2, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c2.Close()
		t.Fatal("a connect to the full queue succeeded; the test needs one that hangs")
	}
	return addr
}

func TestConnectCapGivesUpOnSilentPeer(t *testing.T) {
	silent := silentPeer(t)
	nt, tr, err := newTransport("127.0.0.1", 0, 300*time.Millisecond, stdlog.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Shutdown()
	start := time.Now()
	if c, err := tr.DialAddressTimeout(memberlist.Address{Addr: silent}, 10*time.Second); err == nil {
		c.Close()
		t.Fatal("connected to a silent peer")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the connect to a silent peer took %s; the cap is 300ms", took)
	}
	// A live peer still connects through the cap.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := tr.DialTimeout(ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatalf("connecting to a live peer: %v", err)
	}
	c.Close()
}

// A restarted site tries its seeds and saved peers one at a time; one that
// is down must cost the connect cap, not memberlist's TCPTimeout (10 s
// here, as on lan). Four sites each hold a silent seed and a live one, in
// random order: without the cap, each that tries the silent one first
// waits 10 s.
func TestFirstJoinPassesSilentSeedQuickly(t *testing.T) {
	silent := silentPeer(t)
	slowTCP := func(c *Config) {
		c.connectTimeout = 500 * time.Millisecond
		c.tune = func(mc *memberlist.Config) { mc.TCPTimeout = 10 * time.Second }
	}
	a := startNode(t, "a", nil, slowTCP)
	seeds := []string{silent, a.LocalAddr().String()}
	var ms []*Membership
	for _, site := range []string{"b", "c", "d", "e"} {
		ms = append(ms, startNode(t, site, seeds, slowTCP))
	}
	start := time.Now()
	eventually(t, "every site to join a", 20*time.Second, func() bool {
		for _, m := range ms {
			if !allAlive(m, "a") {
				return false
			}
		}
		return true
	}, ms...)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("joining past a silent seed took %s; want about the 500ms connect cap", took)
	}
}

func TestTransportPortInUse(t *testing.T) {
	nt, _, err := newTransport("127.0.0.1", 0, time.Second, stdlog.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Shutdown()
	_, _, err = newTransport("127.0.0.1", nt.GetAutoBindPort(), time.Second, stdlog.New(io.Discard, "", 0))
	if err == nil || !strings.Contains(err.Error(), "gossip.bindPort") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("second bind: %v; want one line naming gossip.bindPort", err)
	}
}
