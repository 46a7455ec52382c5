package peering

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// ParsePeerSpec reads "name=beta,address=10.0.2.10,asn=64602[,accept=10.50.0.0/16[;10.51.0.0/16]]".
func ParsePeerSpec(s string) (Peer, error) {
	var p Peer
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || v == "" {
			return Peer{}, fmt.Errorf("peer %q: want key=value pairs name=,address=,asn=[,accept=]", s)
		}
		if seen[k] {
			return Peer{}, fmt.Errorf("peer %q: %s given twice", s, k)
		}
		seen[k] = true
		switch k {
		case "name":
			p.Name = v
		case "address":
			a, err := netip.ParseAddr(v)
			if err != nil {
				return Peer{}, fmt.Errorf("peer %q: address: %w", s, err)
			}
			p.Address = a
		case "asn":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return Peer{}, fmt.Errorf("peer %q: asn %q: want 1..4294967295", s, v)
			}
			p.ASN = uint32(n)
		case "accept":
			for _, ps := range strings.Split(v, ";") {
				pf, err := netip.ParsePrefix(ps)
				if err != nil {
					return Peer{}, fmt.Errorf("peer %q: accept: %w", s, err)
				}
				p.Accept = append(p.Accept, pf)
			}
		default:
			return Peer{}, fmt.Errorf("peer %q: unknown key %q (name, address, asn, accept)", s, k)
		}
	}
	var missing []string
	for _, k := range []string{"name", "address", "asn"} {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return Peer{}, fmt.Errorf("peer %q: missing %s", s, strings.Join(missing, ", "))
	}
	return p, nil
}

type peerFileEntry struct {
	Name    string         `json:"name"`
	Address netip.Addr     `json:"address"`
	ASN     uint32         `json:"asn"`
	Accept  []netip.Prefix `json:"accept,omitempty"`
}

// ParsePeersFile reads a YAML list of {name, address, asn, accept: [prefix...]} strictly.
func ParsePeersFile(data []byte) ([]Peer, error) {
	var doc struct {
		Peers []peerFileEntry `json:"peers"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("decoding peers file: %w", err)
	}
	var out []Peer
	var errs []error
	for i, e := range doc.Peers {
		if e.Name == "" || !e.Address.IsValid() || e.ASN == 0 {
			errs = append(errs, fmt.Errorf("peers[%d]: name, address and asn are required", i))
			continue
		}
		out = append(out, Peer(e))
	}
	return out, errors.Join(errs...)
}

// Extra is what an operator adds to the peering besides the local side:
// peers from a file (its name and contents) and from specs
// (ParsePeerSpec), and a router id overriding the local one.
type Extra struct {
	PeersFile string
	PeersData []byte
	Specs     []string
	RouterID  string
}

// Add appends e's peers to peers and applies its router id to l; errors
// name the flag (--peers-file, --peer, --router-id) that was wrong.
func (e Extra) Add(l Local, peers []Peer) (Local, []Peer, error) {
	if e.PeersFile != "" {
		filePeers, err := ParsePeersFile(e.PeersData)
		if err != nil {
			return l, nil, fmt.Errorf("%s: %w", e.PeersFile, err)
		}
		peers = append(peers, filePeers...)
	}
	for _, s := range e.Specs {
		p, err := ParsePeerSpec(s)
		if err != nil {
			return l, nil, fmt.Errorf("--peer: %w", err)
		}
		peers = append(peers, p)
	}
	if e.RouterID != "" {
		id, err := netip.ParseAddr(e.RouterID)
		if err != nil {
			return l, nil, fmt.Errorf("--router-id: %w", err)
		}
		l.RouterID = id
	}
	return l, peers, nil
}
