package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tfsite/tfsite/agent/underlay"
)

// dhcpReset puts iface back to the DHCP baseline: released from a bridge
// that took it over (TF's vhost0: its addresses flushed, set down), its own
// addresses and the main table's default routes flushed, then a DHCP
// exchange whose lease is applied (agent/underlay). The caller guards it,
// so a failed exchange is reverted.
func dhcpReset(ctx context.Context, iface string, log *slog.Logger) error {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("no interface %q: %w", iface, err)
	}
	if mi := l.Attrs().MasterIndex; mi != 0 {
		if err := netlink.LinkSetNoMaster(l); err != nil {
			return fmt.Errorf("releasing %s from its bridge: %w", iface, err)
		}
		if m, err := netlink.LinkByIndex(mi); err == nil {
			if err := flushAddrs(m); err != nil {
				return err
			}
			if err := netlink.LinkSetDown(m); err != nil {
				return fmt.Errorf("setting %s down: %w", m.Attrs().Name, err)
			}
		}
	}
	if err := flushAddrs(l); err != nil {
		return err
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("deleting default route: %w", err)
			}
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", iface, err)
	}
	opts := underlay.Default()
	opts.Iface, opts.Apply, opts.Timeout = iface, true, 5*time.Second
	res, err := underlay.Discover(ctx, opts, log)
	if err != nil {
		return fmt.Errorf("DHCP on %s: %w", iface, err)
	}
	log.Info("underlay reset to DHCP", "iface", iface, "address", res.Address, "gateway", res.Gateway)
	return nil
}

func flushAddrs(l netlink.Link) error {
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if err := netlink.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing %s from %s: %w", a.IPNet, l.Attrs().Name, err)
		}
	}
	return nil
}
