package oob

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Apply sets up the management path in the calling thread's network
// namespace and records the reservation. It is idempotent.
func Apply(cfg Config, log *slog.Logger) (*Reservation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("management config: %w", err)
	}
	link, err := netlink.LinkByName(cfg.Link)
	if err != nil {
		return nil, fmt.Errorf("management link %s: %w", cfg.Link, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("setting %s up: %w", cfg.Link, err)
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(cfg.Address)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("adding %s to %s: %w", cfg.Address, cfg.Link, err)
	}
	res := &Reservation{Link: cfg.Link, Address: cfg.Address, Gateway: cfg.Gateway, Table: cfg.Table, Priority: cfg.Priority}
	if cfg.Mode != ModeRule {
		err := applyVRF(cfg, link)
		switch {
		case err == nil:
			res.Mode, res.VRF = ModeVRF, cfg.VRFName
		case cfg.Mode == ModeVRF:
			return nil, fmt.Errorf("management VRF %s: %w (use --mode rule on kernels without VRF)", cfg.VRFName, err)
		default:
			res.Note = "no VRF on this kernel (" + err.Error() + "): policy rule instead"
			log.Info("management path falls back to a policy rule", "reason", err)
		}
	}
	if res.Mode == "" {
		if err := applyRule(cfg, link); err != nil {
			return nil, err
		}
		res.Mode = ModeRule
	}
	if err := Save(cfg.StateDir, res); err != nil {
		return nil, fmt.Errorf("recording the management reservation: %w", err)
	}
	log.Info("management path up", "link", res.Link, "address", res.Address, "table", res.Table, "mode", res.Mode)
	return res, nil
}

// HasVRF reports whether the kernel can make VRF devices.
func HasVRF() bool {
	name := fmt.Sprintf("tfvrf%d", os.Getpid()%100000)
	err := netlink.LinkAdd(&netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: name}, Table: 4242})
	if err != nil {
		return false
	}
	if l, err := netlink.LinkByName(name); err == nil {
		_ = netlink.LinkDel(l)
	}
	return true
}

func applyVRF(cfg Config, link netlink.Link) error {
	vrf, err := netlink.LinkByName(cfg.VRFName)
	if err != nil {
		if err := netlink.LinkAdd(&netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: cfg.VRFName}, Table: cfg.Table}); err != nil {
			return err
		}
		if vrf, err = netlink.LinkByName(cfg.VRFName); err != nil {
			return err
		}
	}
	if v, ok := vrf.(*netlink.Vrf); !ok || v.Table != cfg.Table {
		return fmt.Errorf("link %s exists and is not a VRF on table %d", cfg.VRFName, cfg.Table)
	}
	if err := netlink.LinkSetUp(vrf); err != nil {
		return err
	}
	if link.Attrs().MasterIndex != vrf.Attrs().Index {
		if err := netlink.LinkSetMaster(link, vrf); err != nil {
			return fmt.Errorf("enslaving %s to %s: %w", cfg.Link, cfg.VRFName, err)
		}
		// Enslaving flushes the link's addresses' routes into the VRF table;
		// make sure the address itself is still there.
		_ = netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(cfg.Address)})
	}
	// Let sshd, bound in the default VRF, accept connections arriving in it.
	_ = os.WriteFile("/proc/sys/net/ipv4/tcp_l3mdev_accept", []byte("1"), 0o644)
	if cfg.Gateway.IsValid() {
		r := &netlink.Route{Table: int(cfg.Table), Dst: ipNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0)), Gw: cfg.Gateway.AsSlice(), LinkIndex: link.Attrs().Index}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("default route of the VRF: %w", err)
		}
	}
	return nil
}

func applyRule(cfg Config, link netlink.Link) error {
	idx := link.Attrs().Index
	seg := &netlink.Route{Table: int(cfg.Table), Dst: ipNet(cfg.Address.Masked()), LinkIndex: idx, Scope: netlink.SCOPE_LINK,
		Src: cfg.Address.Addr().AsSlice(), Protocol: unix.RTPROT_STATIC}
	if err := netlink.RouteReplace(seg); err != nil {
		return fmt.Errorf("management segment route in table %d: %w", cfg.Table, err)
	}
	if cfg.Gateway.IsValid() {
		def := &netlink.Route{Table: int(cfg.Table), Dst: ipNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0)), Gw: cfg.Gateway.AsSlice(),
			LinkIndex: idx, Src: cfg.Address.Addr().AsSlice(), Protocol: unix.RTPROT_STATIC}
		if err := netlink.RouteReplace(def); err != nil {
			return fmt.Errorf("management default route via %s in table %d: %w", cfg.Gateway, cfg.Table, err)
		}
	}
	rule := netlink.NewRule()
	rule.Family = netlink.FAMILY_V4
	rule.Src = ipNet(netip.PrefixFrom(cfg.Address.Addr(), 32))
	rule.Table = int(cfg.Table)
	rule.Priority = int(cfg.Priority)
	rules, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing rules: %w", err)
	}
	for _, r := range rules {
		if r.Priority == rule.Priority && r.Table == rule.Table && r.Src != nil && r.Src.String() == rule.Src.String() {
			return nil
		}
	}
	if err := netlink.RuleAdd(rule); err != nil {
		return fmt.Errorf("rule from %s lookup %d: %w", cfg.Address.Addr(), cfg.Table, err)
	}
	return nil
}
