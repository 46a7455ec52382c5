package underlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// requestedOptions is the parameter request list (option 55). Servers such
// as dnsmasq send only what is asked for, so option 121 must be here.
var requestedOptions = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask,           // 1
	dhcpv4.OptionRouter,               // 3
	dhcpv4.OptionDomainNameServer,     // 6
	dhcpv4.OptionDomainName,           // 15
	dhcpv4.OptionInterfaceMTU,         // 26
	dhcpv4.OptionBroadcastAddress,     // 28
	dhcpv4.OptionIPAddressLeaseTime,   // 51
	dhcpv4.OptionServerIdentifier,     // 54
	dhcpv4.OptionRenewTimeValue,       // 58
	dhcpv4.OptionRebindingTimeValue,   // 59
	dhcpv4.OptionClasslessStaticRoute, // 121
}

// firstWait is the first retransmission wait: the waits double, and the
// attempts of both messages (DISCOVER and REQUEST) together fit in timeout:
// 2 * w * (2^attempts - 1) = timeout.
func firstWait(timeout time.Duration, retries int) time.Duration {
	attempts := retries + 1
	w := timeout / time.Duration(2*((1<<attempts)-1))
	return max(w, 10*time.Millisecond)
}

// exchange runs one DHCPv4 exchange over conn (a raw socket in production,
// a socketpair to an in-process server4 in tests) and returns the decoded
// lease. opts must have defaults applied; ctx bounds the exchange.
func exchange(ctx context.Context, conn net.PacketConn, mac net.HardwareAddr, opts Options, log *slog.Logger) (*Lease, error) {
	c, err := nclient4.NewWithConn(conn, mac,
		nclient4.WithTimeout(firstWait(opts.Timeout, opts.Retries)),
		nclient4.WithRetry(opts.Retries+1),
		nclient4.WithLogger(slogAdapter{log}),
	)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("starting DHCP client: %w", err)
	}
	// Closing an AF_PACKET socket waits for an RCU grace period in the
	// kernel (packet_release -> synchronize_net, 10-20 ms): off the
	// caller's path, which has its answer.
	defer func() { go c.Close() }()

	prl := dhcpv4.WithRequestedOptions(requestedOptions...)
	var ack *dhcpv4.DHCPv4
	if opts.RequestIP != "" {
		ack, err = initReboot(ctx, c, mac, opts.RequestIP, prl)
	} else {
		var lease *nclient4.Lease
		lease, err = c.Request(ctx, prl)
		if lease != nil {
			ack = lease.ACK
		}
	}
	if err != nil {
		return nil, exchangeError(ctx, err, opts)
	}
	l, err := ParseLease(ack)
	if err != nil {
		return nil, err
	}
	log.Debug("DHCP lease", "address", l.Address, "gateway", l.Addr, "source", l.Source, "server", l.Server)
	return l, nil
}

// initReboot sends a REQUEST for a remembered address without a DISCOVER
// (RFC 2131 4.3.2, INIT-REBOOT: option 50, no server identifier).
func initReboot(ctx context.Context, c *nclient4.Client, mac net.HardwareAddr, ip string, prl dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	addr, err := parseIPv4(ip)
	if err != nil {
		return nil, err
	}
	req, err := dhcpv4.New(
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(addr.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
		prl,
	)
	if err != nil {
		return nil, fmt.Errorf("building INIT-REBOOT request: %w", err)
	}
	resp, err := c.SendAndRead(ctx, c.RemoteAddr(), req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, err
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nclient4.ErrNak{Offer: req, Nak: resp}
	}
	return resp, nil
}

// exchangeError maps nclient4's errors to the package's sentinels.
func exchangeError(ctx context.Context, err error, opts Options) error {
	var nak *nclient4.ErrNak
	switch {
	case errors.As(err, &nak):
		msg := "no reason given"
		if m := nak.Nak.Message(); m != "" {
			msg = fmt.Sprintf("%q", m)
		}
		from := "server"
		if s := nak.Nak.ServerIdentifier(); s != nil {
			from = "server " + s.String()
		}
		return fmt.Errorf("%w: %s refused the request (%s)", ErrNAK, from, msg)
	case errors.Is(err, nclient4.ErrNoResponse), errors.Is(err, context.DeadlineExceeded) && !errors.Is(context.Cause(ctx), context.Canceled):
		return fmt.Errorf("%w: nothing within %s (%d retransmissions per message): check the cable/VLAN and that a DHCP server serves this link", ErrNoResponse, opts.Timeout, opts.Retries)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("DHCP exchange cancelled: %w", err)
	}
	return fmt.Errorf("DHCP exchange: %w", err)
}

// slogAdapter lets nclient4 log through the injected slog logger (debug).
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) PrintMessage(prefix string, m *dhcpv4.DHCPv4) {
	a.log.Debug(prefix, "type", m.MessageType().String(), "xid", m.TransactionID.String(), "yiaddr", m.YourIPAddr)
}

func (a slogAdapter) Printf(format string, v ...any) { a.log.Debug(fmt.Sprintf(format, v...)) }
