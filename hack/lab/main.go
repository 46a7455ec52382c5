// Command lab builds the network labs of internal/lab for shell scripts (hack/demo.sh,
// hack/bench-discover.sh), so the demo and the benchmarks run in the lab the tests check. It prints
// shell assignments to eval, leaves the lab running (dnsmasq writes to files in --dir) and exits;
// `lab down --dir DIR` removes it.
//
//	eval "$(lab up pair --prefix tfs-b1 --dir /tmp/x --option 121,0.0.0.0/0,192.0.2.1)"   # SRV, CLI
//	eval "$(lab up sites --prefix tfdemo-1 --dir /tmp/y alpha beta)"   # transit, ns[i], ulns[i], ...
//	lab down --dir /tmp/x
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/tfsite/tfsite/internal/lab"
)

const usage = `usage: lab up pair  --prefix P --dir DIR [--option DHCP-OPTION]...
       lab up sites --prefix P --dir DIR NAME...
       lab down --dir DIR

up pair    a DHCP server namespace P-srv (eth0 192.0.2.1/24, dnsmasq 192.0.2.100-150) joined to a
           client namespace P-cli (eth0 unconfigured); prints SRV=, CLI=, DNSMASQ_LOG=
up sites   a transit bridge (P-transit, 192.168.240.0/24) and per NAME a site namespace P-NAME
           (eth0: its underlay 192.168.(11+i).0/24 served by dnsmasq in P-NAME-ul, gateway .1;
           eth1: transit 192.168.240.(11+i)); prints transit= and the arrays ns, ulns, ulnet, gw, tr
down       deletes the namespaces recorded in DIR (and every process in them)
Needs root, iproute2 and dnsmasq (dnsmasq-base).
`

var safe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

type options []string

func (o *options) String() string     { return fmt.Sprint(*o) }
func (o *options) Set(v string) error { *o = append(*o, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(2)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	prefix := fs.String("prefix", "", "namespace name prefix (lower case, digits, '-')")
	dir := fs.String("dir", "", "directory for the lab's files (dnsmasq logs, leases, the namespace list)")
	var opts options
	fs.Var(&opts, "option", "dnsmasq --dhcp-option for the pair's server (repeatable)")
	if len(args) == 0 {
		fs.Usage()
		return fmt.Errorf("no command: want up pair, up sites or down")
	}
	cmd := args[0]
	args = args[1:]
	if cmd == "up" {
		if len(args) == 0 {
			return fmt.Errorf("up what? want up pair or up sites")
		}
		cmd += " " + args[0]
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--dir is required")
	}
	if cmd != "down" && !safe.MatchString(*prefix) {
		return fmt.Errorf("--prefix %q: want 1-32 of a-z, 0-9, '-'", *prefix)
	}
	switch cmd {
	case "down":
		return lab.Down(*dir)
	case "up pair":
		p, err := lab.NewPair(*prefix, *dir, opts)
		if err != nil {
			_ = lab.Down(*dir)
			return err
		}
		fmt.Fprintf(out, "SRV=%s\nCLI=%s\nDNSMASQ_LOG=%s/dnsmasq.log\n", p.Server, p.Client, p.DHCP.Dir)
		return nil
	case "up sites":
		for _, n := range fs.Args() {
			if !safe.MatchString(n) {
				return fmt.Errorf("site name %q: want 1-32 of a-z, 0-9, '-'", n)
			}
		}
		s, err := lab.NewSites(*prefix, *dir, fs.Args())
		if err != nil {
			_ = lab.Down(*dir)
			return err
		}
		fmt.Fprintf(out, "transit=%s\n", s.Transit)
		for i, site := range s.Sites {
			fmt.Fprintf(out, "ns[%d]=%s ulns[%d]=%s ulnet[%d]=%s gw[%d]=%s tr[%d]=%s\n",
				i, site.NS, i, site.UnderlayNS, i, site.UnderlayNet, i, site.Gateway, i, site.Transit)
		}
		return nil
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}
