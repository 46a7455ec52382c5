package api

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteStatus renders st for people: a key/value block, then the peers table.
func WriteStatus(w io.Writer, st Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	kv := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	site := st.Site
	if site == "" {
		site = "(not configured)"
	}
	kv("site", "%s", site)
	kv("phase", "%s", st.Phase)
	if a := st.Allocation; a != nil {
		kv("asn", "%d", a.ASN)
		kv("pod", "%s", a.Pod)
		kv("service", "%s", a.Service)
		kv("fabric", "%s", a.Fabric)
	} else {
		kv("allocation", "none yet")
	}
	switch u := st.Underlay; {
	case u == nil:
		kv("underlay", "not discovered yet")
	case u.Disabled:
		kv("underlay", "discovery disabled")
	default:
		kv("underlay", "%s %s gateway %s (%s)", u.Interface, u.Address, u.Gateway, u.GatewaySource)
	}
	if st.Gossip != "" {
		kv("gossip", "%s (health %d, 0 is best)", st.Gossip, st.GossipHealth)
	}
	role := "no"
	if st.Voter {
		role = "yes"
		if st.RaftState != "" {
			role += ", raft " + st.RaftState
		}
	}
	kv("voter", "%s (voters: %s)", role, strings.Join(st.Voters, ", "))
	if st.Leader != "" {
		kv("leader", "%s", st.Leader)
	}
	if b := st.BringUp; b != nil {
		kv("bring-up", "%s", b.Summary())
		if d := b.Doing(time.Now()); d != "" {
			kv("", "%s", d)
		}
		if v := b.Vrouter; v != nil {
			outcome := "confirmed"
			if !v.Confirmed {
				outcome = "REVERTED: " + v.Reason
			}
			kv("vrouter", "%s (%s)", outcome, v.Ended.Format(time.RFC3339))
		}
		kv("tf peers", "%d configured", b.PeersConfigured)
	}
	if st.LastError != "" {
		kv("last error", "%s", st.LastError)
	}
	for i, p := range st.Problems {
		k := ""
		if i == 0 {
			k = "problems"
		}
		kv(k, "%s", p)
	}
	if len(st.ConfigSources) > 0 {
		kv("config from", "%s", strings.Join(st.ConfigSources, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\npeers (%d):\n", len(st.Peers))
	return WritePeers(w, st.Peers)
}

// WritePeers renders the peers as a table.
func WritePeers(w io.Writer, peers []Peer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tSTATE\tADDRESS\tASN\tPOD\tSERVICE\tFABRIC\tVOTER")
	for _, p := range peers {
		asn, pod, svc, fab := "-", "-", "-", "-"
		if a := p.Allocation; a != nil {
			asn, pod, svc, fab = fmt.Sprint(a.ASN), a.Pod.String(), a.Service.String(), a.Fabric.String()
		}
		voter := ""
		if p.Voter {
			voter = "yes"
		}
		addr := p.Address
		if addr == "" {
			addr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Site, p.State, addr, asn, pod, svc, fab, voter)
	}
	return tw.Flush()
}

// Summary is the report in one phrase: the phase, then the error or what a
// wait waits for.
func (b *BringUp) Summary() string {
	lab := ""
	if b.Profile == "lab" {
		lab = "LAB PROFILE "
	}
	switch {
	case b.Error != "":
		return lab + b.Phase + ": " + b.Error
	case b.Waiting != "":
		return lab + b.Phase + ": " + b.Waiting
	}
	return lab + b.Phase
}
