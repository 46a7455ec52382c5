package underlay

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// Link is the kernel's view of one interface.
type Link struct {
	Name     string
	Index    int
	MAC      net.HardwareAddr
	Kind     string // netlink link type: "device", "veth", "bridge", "vxlan", ...
	Loopback bool
	// Up: administratively up and the carrier is not down.
	Up bool
	// DefaultVia is the gateway of the kernel's default route on this link
	// ("" if none, "on-link" for a default route without a gateway).
	DefaultVia string
	// HasDefault reports whether the kernel has a default route on this link.
	HasDefault bool
}

// skippedPrefixes are name prefixes of devices that are never the underlay:
// Tungsten Fabric's vrouter (vhost0, pkt0..3, tap/vif interfaces), Docker,
// CNI plugins, Kubernetes, libvirt/lxc, and tunnels.
var skippedPrefixes = []string{
	"vhost", "pkt", "tap", "vif", // Tungsten Fabric vrouter
	"docker", "br-", "veth", "cni", "flannel", "cali", "cilium", "weave", "kube-", "lxc", "virbr", "vnet",
	"tun", "tunl", "gre", "gretap", "erspan", "ip6tnl", "sit", "ipip", "vxlan", "genev", "wg", "nodelocaldns", "dummy",
}

// skippedKinds are link types that are never the underlay.
var skippedKinds = map[string]bool{
	"bridge": true, "tuntap": true, "tun": true, "vxlan": true, "geneve": true, "ipip": true, "gre": true,
	"gretap": true, "ip6gre": true, "sit": true, "ip6tnl": true, "wireguard": true, "dummy": true,
	"openvswitch": true, "ipvlan": true, "macvtap": true, "ifb": true, "nlmon": true, "vti": true,
}

// skipReason says why auto does not consider l, or "" when it is a candidate.
// A veth is a candidate unless its name marks it as a container-side peer
// (veth*, cali*, lxc*, ...): inside a namespace or container, eth0 is often
// a veth and is the underlay.
func skipReason(l Link, skip []string) string {
	switch {
	case l.Loopback:
		return "loopback"
	case slices.Contains(skip, l.Name):
		return "in the skip list"
	case skippedKinds[l.Kind]:
		return "a " + l.Kind + " device"
	case len(l.MAC) != 6:
		return "no Ethernet address"
	case !l.Up:
		return "down"
	}
	for _, p := range skippedPrefixes {
		if strings.HasPrefix(l.Name, p) {
			return fmt.Sprintf("named %s* (container, bridge, tunnel or TF device)", p)
		}
	}
	return ""
}

// candidates returns the links auto tries, in preference order: the links
// holding a kernel default route first, then the rest; each group sorted by
// name. Discover picks the first candidate in this order that yields a
// usable lease.
func candidates(links []Link, skip []string) (cands []Link, skipped []string) {
	for _, l := range links {
		if r := skipReason(l, skip); r != "" {
			skipped = append(skipped, l.Name+" ("+r+")")
			continue
		}
		cands = append(cands, l)
	}
	slices.SortStableFunc(cands, func(a, b Link) int {
		if a.HasDefault != b.HasDefault {
			if a.HasDefault {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return cands, skipped
}

// picker decides deterministically which candidate wins while their
// exchanges finish in any order: the first candidate in preference order
// with a lease, decided as soon as every earlier candidate has failed.
type picker struct {
	done  []bool
	lease []*Lease
	errs  []error
}

func newPicker(n int) *picker {
	return &picker{done: make([]bool, n), lease: make([]*Lease, n), errs: make([]error, n)}
}

// record stores candidate i's outcome and returns the winner's index, or -1
// while undecided. When all failed it returns -1 and allDone is true.
func (p *picker) record(i int, l *Lease, err error) (winner int, allDone bool) {
	p.done[i], p.lease[i], p.errs[i] = true, l, err
	for j := range p.done {
		if !p.done[j] {
			return -1, false
		}
		if p.lease[j] != nil {
			return j, false
		}
	}
	return -1, true
}
