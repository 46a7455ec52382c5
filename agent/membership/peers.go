package membership

// The peers file: the last members seen, so a restart can re-join without seeds.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// maxSavedPeers bounds PeersFile: enough that some are up after a restart,
// few enough that knocking at all of them stays quick.
const maxSavedPeers = 16

// savePeers writes up to maxSavedPeers alive peers to PeersFile when they
// changed. Each site keeps its own sample (ordered by a hash of both names),
// stable while those peers stay alive. A site alone keeps the file as is.
func (m *Membership) savePeers() {
	if m.cfg.PeersFile == "" {
		return
	}
	type peer struct {
		addr string
		rank uint64
	}
	var peers []peer
	for _, n := range m.ml.Members() {
		if n.Name == m.cfg.Site {
			continue // Members lists the alive (and suspect) nodes
		}
		h := fnv.New64a()
		h.Write([]byte(m.cfg.Site + "\x00" + n.Name))
		peers = append(peers, peer{n.Address(), h.Sum64()})
	}
	if len(peers) == 0 {
		return
	}
	slices.SortFunc(peers, func(a, b peer) int { return cmp.Compare(a.rank, b.rank) })
	addrs := make([]string, 0, maxSavedPeers)
	for _, p := range peers[:min(len(peers), maxSavedPeers)] {
		addrs = append(addrs, p.addr)
	}
	slices.Sort(addrs)
	if slices.Equal(addrs, m.saved) {
		return
	}
	b, _ := json.Marshal(addrs)
	err := os.MkdirAll(filepath.Dir(m.cfg.PeersFile), 0o755)
	if err == nil {
		err = atomicfile.Write(m.cfg.PeersFile, append(b, '\n'), 0o644)
	}
	if err != nil {
		m.log.Warn("saving gossip peers (a restart joins through the seeds only)", "err", err)
		return
	}
	m.saved = addrs
}

// readPeers loads PeersFile: a JSON list of "ip:port". No file is no peers.
func readPeers(path string) ([]string, error) {
	addrs, _, err := atomicfile.Read(path, "gossip peers file", "delete it: the agent writes it again", DecodePeers)
	return addrs, err
}

// DecodePeers strictly decodes a saved peer list: a JSON array of at most
// maxSavedPeers "ip:port" strings.
func DecodePeers(b []byte) ([]string, error) {
	var addrs []string
	if err := strictjson.Unmarshal(b, &addrs); err != nil {
		return nil, fmt.Errorf("not a peer list: %w", err)
	}
	if len(addrs) > maxSavedPeers {
		return nil, fmt.Errorf("%d peers, at most %d are kept", len(addrs), maxSavedPeers)
	}
	for i, a := range addrs {
		if ap, err := netip.ParseAddrPort(a); err != nil || ap.Port() == 0 {
			return nil, fmt.Errorf("peer %d %q is not ip:port", i, a)
		}
	}
	return addrs, nil
}
