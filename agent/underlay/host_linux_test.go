package underlay

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/tfsite/tfsite/internal/testrig"
)

// ipv4 builds an IPv4 header (ihl words) + 8 payload bytes.
func ipv4Packet(proto byte, ihl int, fragOff uint16, dport uint16) []byte {
	p := make([]byte, ihl*4+8)
	p[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(p[6:], fragOff)
	p[9] = proto
	binary.BigEndian.PutUint16(p[ihl*4+2:], dport)
	return p
}

func TestDHCPClientFilter(t *testing.T) {
	if _, err := dhcpClientFilter(); err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(dhcpClientProgram)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		pass bool
	}{
		{"udp to 68", ipv4Packet(17, 5, 0, 68), true},
		{"udp to 68 with IP options", ipv4Packet(17, 6, 0, 68), true},
		{"udp to 68, don't-fragment set", ipv4Packet(17, 5, 0x4000, 68), true},
		{"udp to 67", ipv4Packet(17, 5, 0, 67), false},
		{"tcp to 68", ipv4Packet(6, 5, 0, 68), false},
		{"later fragment", ipv4Packet(17, 5, 0x0010, 68), false},
	} {
		n, err := vm.Run(tc.pkt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", tc.name, n, tc.pass)
		}
	}
}

// TestDetachingConnHolder: a detached socket is held by a child process
// as fd 3 while open; Close ends the holder.
func TestDetachingConnHolder(t *testing.T) {
	testrig.RequireRoot(t)
	ns := testrig.NewNetns(t, "udet")
	var pc *packet.Conn
	if err := ns.Do(func() error {
		var err error
		pc, err = packet.Listen(&net.Interface{Index: 1, Name: "lo"}, packet.Datagram, unix.ETH_P_IP, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := detach(pc)
	<-c.ready
	// holder finds a child of this process running holderCommand with a
	// socket as fd 3 (read from /proc: /proc/PID/stat is "pid (comm) state ppid ...").
	holder := func() string {
		stats, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, st := range stats {
			b, err := os.ReadFile(st)
			if err != nil {
				continue
			}
			open, closing := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
			if open < 0 || closing < open {
				continue
			}
			rest := strings.Fields(string(b[closing+1:]))
			if string(b[open+1:closing]) != holderCommand || len(rest) < 2 || rest[1] != strconv.Itoa(os.Getpid()) {
				continue
			}
			pid := strings.TrimSpace(string(b[:open]))
			if target, err := os.Readlink("/proc/" + pid + "/fd/3"); err == nil && strings.HasPrefix(target, "socket:") {
				return pid
			}
		}
		return ""
	}
	pid := holder()
	if pid == "" {
		t.Fatalf("no %s child holds the socket as fd 3", holderCommand)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for holder() != "" {
		if time.Now().After(deadline) {
			t.Fatalf("holder %s still running after Close", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestScenarioDetachSockets: Discover works with DetachSockets (as the CLI
// runs it).
func TestScenarioDetachSockets(t *testing.T) {
	t.Parallel()
	cli, srv := link2(t, "192.0.2.1/24")
	serve(t, srv, "192.0.2.100,192.0.2.150,255.255.255.0,1h", nil)
	res, err := discoverIn(t, cli, Options{Iface: "eth0", Timeout: 5 * time.Second, DetachSockets: true})
	if err != nil || res.Gateway != "192.0.2.1" {
		t.Fatalf("%+v %v", res, err)
	}
}
