package underlay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
)

// host is the kernel boundary Discover needs: Linux implements it with
// netlink and AF_PACKET sockets (host_linux.go); tests substitute links
// with socketpairs to an in-process DHCP server.
type host interface {
	// Links lists the interfaces with their default routes.
	Links() ([]Link, error)
	// Open returns a packet connection for DHCP on the link (UDP port 68,
	// sending broadcast frames).
	Open(l Link) (net.PacketConn, error)
	// Apply configures the lease on the link.
	Apply(l Link, lease *Lease) error
}

// Discover finds the underlay gateway on opts.Iface, or with "auto" on the
// interface it picks: every interface except loopback, the skip list,
// down links, links without an Ethernet address, bridges/tunnels/dummies and
// Docker/CNI/Kubernetes/TF devices (vhost*, pkt*, tap*, vif*, veth*, ...) is
// tried concurrently; the winner is the first, in this order, that yields a
// usable lease: links holding the kernel's default route, then the others,
// each group sorted by name. A candidate whose turn has not come is waited
// for (up to Timeout), so the choice does not depend on which server is
// faster.
//
// Without opts.Apply nothing on the host changes. Errors wrap the sentinels
// (ErrNoInterface, ErrLinkDown, ErrNoResponse, ErrNAK, ErrNoGateway,
// ErrGatewayIsSelf, ErrGatewayOffLink, ErrBadLease, ErrApply) and name the
// interface.
func Discover(ctx context.Context, opts Options, log *slog.Logger) (*Result, error) {
	h, err := newHost(opts)
	if err != nil {
		return nil, err
	}
	return discover(ctx, h, opts, log)
}

func discover(ctx context.Context, h host, opts Options, log *slog.Logger) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	links, err := h.Links()
	if err != nil {
		return nil, fmt.Errorf("reading links: %w", err)
	}

	var cands []Link
	if opts.Iface == IfaceAuto {
		var skipped []string
		cands, skipped = candidates(links, opts.Skip)
		log.Debug("auto candidates", "candidates", linkNames(cands), "skipped", skipped)
		if len(cands) == 0 {
			return nil, fmt.Errorf("auto: %w: no candidate interface (skipped: %s): name one with --iface or bring the underlay link up", ErrNoInterface, strings.Join(skipped, ", "))
		}
	} else {
		l, err := named(links, opts.Iface)
		if err != nil {
			return nil, err
		}
		cands = []Link{l}
	}

	// Sockets are opened here, on the caller's thread, so they belong to
	// the caller's network namespace; the exchanges then run concurrently.
	conns := make([]net.PacketConn, len(cands))
	for i, l := range cands {
		c, err := h.Open(l)
		if err != nil {
			for _, c := range conns[:i] {
				_ = c.Close()
			}
			return nil, fmt.Errorf("%s: opening raw DHCP socket: %w", l.Name, err)
		}
		conns[i] = c
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	type outcome struct {
		i     int
		lease *Lease
		err   error
	}
	out := make(chan outcome, len(cands))
	for i, l := range cands {
		go func() {
			lease, err := exchange(ctx, conns[i], l.MAC, opts, log.With("iface", l.Name))
			out <- outcome{i, lease, err}
		}()
	}
	p := newPicker(len(cands))
	winner, pending := -1, len(cands)
	for pending > 0 {
		o := <-out
		pending--
		w, all := p.record(o.i, o.lease, o.err)
		if w >= 0 {
			winner = w
			break
		}
		if all {
			break
		}
	}
	// Stop the losers and wait for them: they return promptly on ctx, and
	// no exchange outlives Discover.
	cancel()
	for ; pending > 0; pending-- {
		<-out
	}

	if winner < 0 {
		return nil, candidateErrors(cands, p.errs)
	}
	l, lease := cands[winner], p.lease[winner]
	res := lease.result()
	res.Interface, res.MAC = l.Name, l.MAC.String()
	res.KernelDefaultRoute = l.DefaultVia
	res.Agrees = res.KernelDefaultRoute == res.Gateway
	log.Info("underlay gateway", "iface", l.Name, "gateway", res.Gateway, "source", res.GatewaySource, "kernel", res.KernelDefaultRoute, "agrees", res.Agrees)

	if opts.Apply {
		if err := h.Apply(l, lease); err != nil {
			return &res, fmt.Errorf("%s: %w: %v", l.Name, ErrApply, err)
		}
		log.Info("lease applied", "iface", l.Name, "address", res.Address, "gateway", res.Gateway, "mtu", res.MTU)
	}
	return &res, nil
}

// named finds the interface the operator named and checks it can run DHCP.
func named(links []Link, name string) (Link, error) {
	for _, l := range links {
		if l.Name != name {
			continue
		}
		switch {
		case len(l.MAC) != 6:
			return l, fmt.Errorf("%s: %w: it has no Ethernet address, so DHCP cannot run on it", name, ErrNoInterface)
		case !l.Up:
			return l, fmt.Errorf("%s: %w: bring it up (ip link set %s up) and check the cable", name, ErrLinkDown, name)
		}
		return l, nil
	}
	return Link{}, fmt.Errorf("%s: %w: no such interface (see ip link)", name, ErrNoInterface)
}

// candidateErrors reports why no candidate yielded a lease, in preference
// order, on one line; errors.Is matches every candidate's sentinel.
func candidateErrors(cands []Link, errs []error) error {
	if len(cands) == 1 {
		return fmt.Errorf("%s: %w", cands[0].Name, errs[0])
	}
	var m multiError
	for i, l := range cands {
		if errs[i] != nil {
			m = append(m, fmt.Errorf("%s: %w", l.Name, errs[i]))
		}
	}
	return fmt.Errorf("auto: no interface yielded a usable lease: %w", m)
}

// multiError joins errors on one line (errors.Join uses newlines).
type multiError []error

func (m multiError) Error() string {
	s := make([]string, len(m))
	for i, e := range m {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (m multiError) Unwrap() []error { return m }

func linkNames(ls []Link) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Name
	}
	return out
}
