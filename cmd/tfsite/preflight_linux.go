package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tfsite/tfsite/agent/kube"
)

func init() { register(newPreflightCmd) }

// Exit codes of `tfsite preflight`.
const (
	exitPreflightFailed = 1
	exitPreflightUsage  = 2
)

func newPreflightCmd() *cobra.Command {
	c := kube.DefaultPreflightConfig()
	var asJSON bool
	minMemory := fmt.Sprintf("%dGi", c.MinMemory/kube.GiB)
	minDisk := fmt.Sprintf("%dG", c.MinDisk/kube.GB)
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Check that this host can run a tfsite site (RAM, disk, kernel, runtime, Kubernetes versions)",
		Long: `Check, before anything changes, that this host can run Kubernetes and Tungsten
Fabric: total memory, free disk under /var, online CPUs, kernel version, swap
off, br_netfilter (bridge-nf-call-iptables = 1), the overlay filesystem,
net.ipv4.ip_forward = 1, the container runtime socket, and the kubeadm and
kubelet versions against the support matrix of the chosen TF release
(agent/kube/support-matrix.yaml, with sources). Every failed check names its
remedy. Nothing on the host is modified; /proc and /sys are only read.

Defaults (from the support matrix): memory >= 32 GiB, free disk >= 50 GB,
CPUs >= 2, kernel >= 5.4. Sizes take Kubernetes quantities (32Gi, 50G, 512Mi).

A kubeadm/kubelet version that tfsite has tested with its TF manifest but that
the TF release never published is a warning, not a failure.

Examples:
  tfsite preflight
  tfsite preflight --json
  tfsite preflight --min-memory 16Gi --min-disk 30G --tf-release R21.12

Exit codes:
  0  every check passed (warnings allowed)
  1  at least one check failed (each names its remedy)
  2  usage: bad flag or value`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs []error
			for flag, dst := range map[string]*uint64{"min-memory": &c.MinMemory, "min-disk": &c.MinDisk} {
				v := map[string]string{"min-memory": minMemory, "min-disk": minDisk}[flag]
				q, err := resource.ParseQuantity(v)
				if err != nil || q.Sign() < 0 {
					errs = append(errs, fmt.Errorf("--%s %q: want a size like 32Gi or 50G", flag, v))
					continue
				}
				*dst = uint64(q.Value())
			}
			if err := errors.Join(errs...); err != nil {
				return withCode(exitPreflightUsage, err)
			}
			r, err := kube.Preflight(cmd.Context(), c)
			if err != nil {
				return withCode(exitPreflightUsage, err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "CHECK\tSTATUS\tDETAIL\n")
				for _, ch := range r.Checks {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", ch.Name, ch.Status, ch.Detail)
				}
				tw.Flush()
				for _, ch := range r.Checks {
					if ch.Remedy != "" {
						fmt.Fprintf(out, "fix %s: %s\n", ch.Name, ch.Remedy)
					}
				}
			}
			return withCode(exitPreflightFailed, r.Err())
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.StringVar(&minMemory, "min-memory", minMemory, "minimum total memory")
	fl.StringVar(&minDisk, "min-disk", minDisk, "minimum free disk under --disk-path")
	fl.StringVar(&c.DiskPath, "disk-path", c.DiskPath, "directory whose filesystem needs --min-disk free")
	fl.IntVar(&c.MinCPUs, "min-cpus", c.MinCPUs, "minimum online CPUs")
	fl.StringVar(&c.MinKernel, "min-kernel", c.MinKernel, "minimum kernel MAJOR.MINOR")
	fl.StringVar(&c.CRISocket, "cri-socket", c.CRISocket, "container runtime socket URL")
	fl.StringVar(&c.TFRelease, "tf-release", c.TFRelease, "TF release whose support-matrix row applies")
	fl.StringVar(&c.Kubeadm, "kubeadm", c.Kubeadm, "kubeadm binary to check")
	fl.StringVar(&c.Kubelet, "kubelet", c.Kubelet, "kubelet binary to check")
	fl.StringVar(&c.Root, "root", c.Root, "read /proc and /sys under this directory (for inspecting another root)")
	return cmd
}
