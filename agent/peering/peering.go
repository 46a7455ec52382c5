// Package peering renders the site's BGP peering for routers outside TF: BIRD 2
// and FRR configurations announcing the site's pod prefix to every other site's
// control node — the same peering the agent registers in TF's config API.
package peering

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/tfsite/tfsite/agent/sitename"
)

// Peer is another site's BGP speaker.
type Peer struct {
	// Name is the peer's site name (a DNS label).
	Name    string
	Address netip.Addr
	ASN     uint32
	// Accept, if set, limits what is imported from the peer (its pod prefix);
	// empty accepts any prefix that does not overlap the local ones.
	Accept []netip.Prefix
}

// Local is this site's speaker.
type Local struct {
	Site     string
	ASN      uint32
	RouterID netip.Addr
	// Address, if set, is the source address of the sessions.
	Address netip.Addr
	// Announce are the prefixes announced to peers (the site's pod prefix).
	Announce []netip.Prefix
	// InstallRoutes puts learned routes into the kernel's main table (BIRD's
	// kernel protocol; FRR's zebra does so anyway).
	InstallRoutes bool
}

// Compiled on first use, not at every tfsite start.
var labelRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`) })

// Validate reports every problem at once.
func Validate(l Local, peers []Peer) error {
	var errs []error
	if !sitename.Valid(l.Site) {
		errs = append(errs, fmt.Errorf("local site %q: must be a DNS label", l.Site))
	}
	if l.ASN == 0 {
		errs = append(errs, errors.New("local asn: missing"))
	}
	if !l.RouterID.IsValid() || !l.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("local router-id %v: must be IPv4", l.RouterID))
	}
	if l.Address.IsValid() && !l.Address.Is4() {
		errs = append(errs, fmt.Errorf("local address %v: must be IPv4", l.Address))
	}
	if len(l.Announce) == 0 {
		errs = append(errs, errors.New("announce: need the site's pod prefix"))
	}
	for _, p := range l.Announce {
		if !p.IsValid() || !p.Addr().Is4() || p != p.Masked() {
			errs = append(errs, fmt.Errorf("announce %v: must be an IPv4 prefix without host bits", p))
		}
	}
	seen := map[string]bool{}
	for _, p := range peers {
		if !labelRe().MatchString(p.Name) || p.Name == l.Site {
			errs = append(errs, fmt.Errorf("peer %q: must be a DNS label other than the local site", p.Name))
		}
		if seen[p.Name] || seen[p.Address.String()] {
			errs = append(errs, fmt.Errorf("peer %q (%v) listed twice", p.Name, p.Address))
		}
		seen[p.Name], seen[p.Address.String()] = true, true
		if !p.Address.IsValid() || !p.Address.Is4() {
			errs = append(errs, fmt.Errorf("peer %q address %v: must be IPv4", p.Name, p.Address))
		}
		if p.ASN == 0 {
			errs = append(errs, fmt.Errorf("peer %q: ASN missing", p.Name))
		} else if p.ASN == l.ASN {
			errs = append(errs, fmt.Errorf("peer %q: asn %d is this site's own ASN; every site has its own (tfsite status shows it), an eBGP peer with ours would be refused", p.Name, p.ASN))
		}
		switch {
		case !p.Address.IsValid():
		case p.Address == l.Address:
			errs = append(errs, fmt.Errorf("peer %q: address %v is this site's own address: a session to itself never comes up", p.Name, p.Address))
		case p.Address == l.RouterID:
			errs = append(errs, fmt.Errorf("peer %q: address %v is this site's router id: a peer is another site's speaker", p.Name, p.Address))
		}
		for _, a := range p.Accept {
			if !a.IsValid() || !a.Addr().Is4() || a != a.Masked() {
				errs = append(errs, fmt.Errorf("peer %q accept %v: must be an IPv4 prefix without host bits", p.Name, a))
			}
			for _, own := range l.Announce {
				if a.IsValid() && own.IsValid() && a.Overlaps(own) {
					errs = append(errs, fmt.Errorf("peer %q accept %v overlaps the local prefix %v", p.Name, a, own))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func sorted(peers []Peer) []Peer {
	out := slices.Clone(peers)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// prefixList renders a BIRD prefix set matching each prefix and its more-specifics.
func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String() + "+"
	}
	return strings.Join(s, ", ")
}

// birdName turns a site name into a BIRD symbol.
func birdName(site string) string { return "peer_" + strings.ReplaceAll(site, "-", "_") }

// BIRD renders a BIRD 2 configuration.
func BIRD(l Local, peers []Peer) ([]byte, error) {
	if err := Validate(l, peers); err != nil {
		return nil, fmt.Errorf("rendering BIRD config: %w", err)
	}
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# BIRD 2 configuration for tfsite site %s, rendered by `tfsite peering --format bird`.\n", l.Site)
	w("router id %s;\n\n", l.RouterID)
	w("protocol device {\n}\n\n")
	if l.InstallRoutes {
		w("# Learned sites' prefixes go into the kernel's main table.\n")
		w("protocol kernel {\n\tipv4 {\n\t\timport none;\n\t\texport where source = RTS_BGP;\n\t};\n}\n\n")
	}
	w("# The site's own prefixes, announced to every peer.\n")
	w("protocol static tfsite_announce {\n\tipv4;\n")
	for _, p := range l.Announce {
		w("\troute %s blackhole;\n", p)
	}
	w("}\n\n")
	w("define TFSITE_LOCAL = [ %s ];\n\n", prefixList(l.Announce))
	w("filter tfsite_export {\n\tif net ~ TFSITE_LOCAL && source = RTS_STATIC then accept;\n\treject;\n}\n\n")
	w("template bgp tfsite_peer {\n")
	if l.Address.IsValid() {
		w("\tlocal %s as %d;\n", l.Address, l.ASN)
	} else {
		w("\tlocal as %d;\n", l.ASN)
	}
	w("\tipv4 {\n\t\timport where !(net ~ TFSITE_LOCAL);\n\t\texport filter tfsite_export;\n\t};\n}\n")
	for _, p := range sorted(peers) {
		w("\nprotocol bgp %s from tfsite_peer {\n", birdName(p.Name))
		w("\tdescription \"tfsite site %s\";\n", p.Name)
		w("\tneighbor %s as %d;\n", p.Address, p.ASN)
		if len(p.Accept) > 0 {
			w("\tipv4 {\n\t\timport where net ~ [ %s ];\n\t\texport filter tfsite_export;\n\t};\n", prefixList(p.Accept))
		}
		w("}\n")
	}
	return b.Bytes(), nil
}

// FRR renders an FRR (bgpd) configuration, as for /etc/frr/frr.conf.
func FRR(l Local, peers []Peer) ([]byte, error) {
	if err := Validate(l, peers); err != nil {
		return nil, fmt.Errorf("rendering FRR config: %w", err)
	}
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("! FRR configuration for tfsite site %s, rendered by `tfsite peering --format frr`.\n", l.Site)
	w("frr defaults traditional\n!\n")
	for _, p := range l.Announce {
		w("ip route %s blackhole\n", p)
	}
	w("!\n")
	for i, p := range l.Announce {
		w("ip prefix-list TFSITE-OUT seq %d permit %s\n", 5*(i+1), p)
	}
	for i, p := range l.Announce {
		w("ip prefix-list TFSITE-IN seq %d deny %s le 32\n", 5*(i+1), p)
	}
	w("ip prefix-list TFSITE-IN seq %d permit 0.0.0.0/0 le 32\n", 5*(len(l.Announce)+1))
	sp := sorted(peers)
	for _, p := range sp {
		if len(p.Accept) == 0 {
			continue
		}
		for i, a := range p.Accept {
			w("ip prefix-list TFSITE-IN-%s seq %d permit %s le 32\n", strings.ToUpper(p.Name), 5*(i+1), a)
		}
	}
	w("!\nrouter bgp %d\n", l.ASN)
	w(" bgp router-id %s\n", l.RouterID)
	w(" no bgp ebgp-requires-policy\n")
	for _, p := range sp {
		w(" neighbor %s remote-as %d\n", p.Address, p.ASN)
		w(" neighbor %s description tfsite site %s\n", p.Address, p.Name)
		if l.Address.IsValid() {
			w(" neighbor %s update-source %s\n", p.Address, l.Address)
		}
	}
	w(" !\n address-family ipv4 unicast\n")
	for _, p := range l.Announce {
		w("  network %s\n", p)
	}
	for _, p := range sp {
		in := "TFSITE-IN"
		if len(p.Accept) > 0 {
			in = "TFSITE-IN-" + strings.ToUpper(p.Name)
		}
		w("  neighbor %s activate\n", p.Address)
		w("  neighbor %s prefix-list TFSITE-OUT out\n", p.Address)
		w("  neighbor %s prefix-list %s in\n", p.Address, in)
	}
	w(" exit-address-family\nexit\n!\n")
	return b.Bytes(), nil
}

// Render picks the format: "bird" or "frr".
func Render(format string, l Local, peers []Peer) ([]byte, error) {
	switch format {
	case "bird":
		return BIRD(l, peers)
	case "frr":
		return FRR(l, peers)
	}
	return nil, fmt.Errorf("format %q: use bird or frr", format)
}
