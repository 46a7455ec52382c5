package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// namespacesFile lists, one per line, the namespaces a lab created in its
// directory, so Down can remove them from another process (a script's trap).
const namespacesFile = "lab.namespaces"

// recorder creates namespaces and notes each in dir before it exists, so a
// failure part way still leaves a list Down can clean up.
type recorder struct{ dir string }

func (r recorder) netns(name string) error {
	f, err := os.OpenFile(filepath.Join(r.dir, namespacesFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("recording the lab's namespaces: %w", err)
	}
	_, err = fmt.Fprintln(f, name)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("recording the lab's namespaces: %w", err)
	}
	return CreateNetns(name)
}

// Down deletes every namespace a lab recorded in dir (with the processes in
// them: dnsmasq, agents); namespaces already gone are skipped.
func Down(dir string) error {
	f, err := os.Open(filepath.Join(dir, namespacesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the lab's namespaces: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name := strings.TrimSpace(sc.Text()); name != "" {
			DeleteNetns(name)
		}
	}
	return sc.Err()
}

// Pair is the discovery lab (agent/underlay's tests, bench-discover): a
// server namespace whose eth0 is 192.0.2.1/24 and runs dnsmasq
// (192.0.2.100-150), joined by veth to a client namespace whose eth0 is
// unconfigured.
type Pair struct {
	Server, Client string
	DHCP           *Dnsmasq
}

// PairRange is the pair's DHCP range.
const PairRange = "192.0.2.100,192.0.2.150,255.255.255.0,1h"

// NewPair builds a Pair named prefix-srv / prefix-cli with its files in dir;
// options are dnsmasq --dhcp-option values.
func NewPair(prefix, dir string, options []string) (*Pair, error) {
	p := &Pair{Server: prefix + "-srv", Client: prefix + "-cli"}
	r := recorder{dir}
	for _, ns := range []string{p.Server, p.Client} {
		if err := r.netns(ns); err != nil {
			return nil, err
		}
	}
	if err := Veth(tmpName(prefix, "p"), p.Server, "eth0", p.Client, "eth0"); err != nil {
		return nil, err
	}
	if err := Addr(p.Server, "eth0", "192.0.2.1/24"); err != nil {
		return nil, err
	}
	d, err := StartDnsmasq(p.Server, DnsmasqConfig{Interface: "eth0", Range: PairRange, Options: options}, dir)
	if err != nil {
		return nil, err
	}
	p.DHCP = d
	return p, nil
}

// Site is one site of the Sites lab.
type Site struct {
	Name string
	// NS is the site's namespace: eth0 on its underlay, eth1 on the transit bridge.
	NS string
	// UnderlayNS is the site's underlay router: eth0 at Gateway, serving DHCP.
	UnderlayNS string
	// UnderlayNet is the underlay's /24 without its last octet (192.168.11).
	UnderlayNet string
	Gateway     string
	// Transit is the site's address on the transit bridge (192.168.240.0/24).
	Transit string
	DHCP    *Dnsmasq
}

// Sites is the demo's lab: a transit namespace with bridge br0 joining every
// site's eth1 (192.168.240.11, .12, ...), and per site its own underlay
// segment 192.168.(11+i).0/24 whose router (gateway .1) serves DHCP
// (.10-.19, option 3).
type Sites struct {
	Transit string
	Sites   []Site
}

// NewSites builds Sites for names (at most 200), namespaces prefix-transit,
// prefix-NAME and prefix-NAME-ul, with each site's dnsmasq files in
// dir/NAME.
func NewSites(prefix, dir string, names []string) (*Sites, error) {
	if len(names) == 0 || len(names) > 200 {
		return nil, fmt.Errorf("sites lab: %d sites; give 1 to 200 names", len(names))
	}
	r := recorder{dir}
	l := &Sites{Transit: prefix + "-transit"}
	if err := r.netns(l.Transit); err != nil {
		return nil, err
	}
	if err := Bridge(l.Transit, "br0"); err != nil {
		return nil, err
	}
	for i, name := range names {
		s := Site{Name: name, NS: prefix + "-" + name, UnderlayNS: prefix + "-" + name + "-ul",
			UnderlayNet: fmt.Sprintf("192.168.%d", 11+i), Transit: fmt.Sprintf("192.168.240.%d", 11+i)}
		s.Gateway = s.UnderlayNet + ".1"
		for _, ns := range []string{s.NS, s.UnderlayNS} {
			if err := r.netns(ns); err != nil {
				return nil, err
			}
		}
		port := fmt.Sprintf("p%d", i)
		steps := []func() error{
			func() error { return Veth(tmpName(prefix, fmt.Sprintf("u%d", i)), s.NS, "eth0", s.UnderlayNS, "eth0") },
			func() error { return Addr(s.UnderlayNS, "eth0", s.Gateway+"/24") },
			func() error { return Veth(tmpName(prefix, fmt.Sprintf("t%d", i)), s.NS, "eth1", l.Transit, port) },
			func() error { return Addr(s.NS, "eth1", s.Transit+"/24") },
			func() error { _, err := run("ip", "-n", l.Transit, "link", "set", port, "master", "br0"); return err },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, fmt.Errorf("site %s: %w", name, err)
			}
		}
		sdir := filepath.Join(dir, name)
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return nil, err
		}
		d, err := StartDnsmasq(s.UnderlayNS, DnsmasqConfig{Interface: "eth0",
			Range:   s.UnderlayNet + ".10," + s.UnderlayNet + ".19,255.255.255.0,1h",
			Options: []string{"3," + s.Gateway}}, sdir)
		if err != nil {
			return nil, fmt.Errorf("site %s: %w", name, err)
		}
		s.DHCP = d
		l.Sites = append(l.Sites, s)
	}
	return l, nil
}

// tmpName is a host-unique name (at most 13 bytes) for a veth end in
// transit: the prefix's last 8 bytes and a tag.
func tmpName(prefix, tag string) string {
	p := strings.NewReplacer("-", "", "_", "").Replace(prefix)
	if len(p) > 8 {
		p = p[len(p)-8:]
	}
	n := p + tag
	if len(n) > 13 {
		n = n[len(n)-13:]
	}
	return n
}
