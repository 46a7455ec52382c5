package membership

import (
	"fmt"
	stdlog "log"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultConnectTimeout caps how long a gossip TCP connect may take.
// memberlist dials with its TCPTimeout (10 s on lan, 30 s on wan), which
// bounds the whole push/pull too. A site that is down (no answer to a SYN)
// costs that much per address, and a restarted site tries its seeds and up
// to 16 saved peers one by one: minutes when the fleet has moved. A live
// peer completes the handshake in its kernel however busy the agent is, so
// the connect can be capped without failing slow exchanges: their deadline
// is still TCPTimeout, set after the connect. 5 s allows three SYNs.
const DefaultConnectTimeout = 5 * time.Second

// connectCap is the gossip transport with its TCP connect time capped.
type connectCap struct {
	memberlist.NodeAwareTransport
	limit time.Duration
}

func (c connectCap) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	return c.NodeAwareTransport.DialTimeout(addr, min(d, c.limit))
}

func (c connectCap) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	return c.NodeAwareTransport.DialAddressTimeout(a, min(d, c.limit))
}

// newTransport binds memberlist's UDP and TCP transport on addr:port
// (port 0: a free one, retried like memberlist does when the UDP and TCP
// ports race) and caps its connects at limit.
func newTransport(addr string, port int, limit time.Duration, logger *stdlog.Logger) (*memberlist.NetTransport, memberlist.NodeAwareTransport, error) {
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{addr}, BindPort: port, Logger: logger})
		if err == nil {
			return nt, connectCap{nt, limit}, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			return nil, nil, fmt.Errorf("starting gossip on %s:%d: %w", addr, port, err)
		}
	}
	return nil, nil, fmt.Errorf("starting gossip on %s:%d: %w (another agent holds the port? stop it or set gossip.bindPort)", addr, port, err)
}
