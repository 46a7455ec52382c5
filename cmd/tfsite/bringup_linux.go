package main

import (
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent/bringup"
	"github.com/tfsite/tfsite/cmd/internal/cli"
)

func init() { register(newBringUpCmd) }

func newBringUpCmd() *cobra.Command {
	var src cli.Sources
	var socket, stateDir, logLevel string
	cmd := &cobra.Command{
		Use:   "bringup",
		Short: "Bring the site up from the agent's allocation: preflight, kubeadm, TF, vrouter, BGP peering",
		Long: `Run bring-up in the foreground (the appliance runs it as tfsite-bringup.service,
next to tfsite-agent.service). It reads the same configuration sources as the
agent (--config, NoCloud seed, kernel command line; docs/config.md) and needs
bringUp.enabled (or tfsite.bringup=on).

It learns everything else from the agent over its API socket: this site's
committed allocation and discovered underlay, and the sites to BGP-peer with.
Each pass — woken when those change, and every bringUp.interval — runs:
  1. preflight (RAM, disk, CPUs, kernel, runtime, versions) while no cluster exists
  2. kubeadm init from the allocation (pod and service CIDRs, node name)
  3. Tungsten Fabric's manifest, server-side applied (a no-op once converged)
  4. TF's vrouter started inside a guarded network window: if the host loses its
     underlay gateway the change is reverted and vrouter kept off the node
  5. TF BGP peering with every other site through TF's config API
Its report (phase, each step, the vrouter outcome) goes to
<stateDir>/bringup/status.json; tfsite status and the console show it.
A stopped agent only pauses bring-up: TF's peering is left as it is.

Examples:
  tfsite bringup                                  # the appliance's service
  tfsite bringup --config /etc/tfsite/config.yaml --log-level debug
  tfsite status --json | jq .bringUp              # what it reported

SIGHUP is ignored (a closed terminal never stops a guarded vrouter window).

Exit codes:
  0  stopped by SIGINT/SIGTERM, or bring-up is off in the config (it says so)
  1  runtime failure
  2  invalid configuration (every problem is listed)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A hang-up is no reason to stop: killed mid-window, bring-up would
			// leave vrouter's guarded window to the agent's watcher.
			signal.Ignore(syscall.SIGHUP)
			log, err := cli.Logger(logLevel)
			if err != nil {
				return err
			}
			l, err := src.Load(cmd.Context())
			if err != nil {
				return cli.ConfigCode(err)
			}
			cfg := l.Config
			if stateDir != "" {
				cfg.StateDir = stateDir
			}
			if socket != "" {
				cfg.APISocket = socket
			}
			if err := cfg.BringUp.Validate(); err != nil {
				return withCode(exitBadConfig, err)
			}
			d, err := bringup.NewDaemon(cfg, log)
			if errors.Is(err, bringup.ErrDisabled) {
				// Not a failure: systemd leaves the unit inactive, nothing restarts it.
				fmt.Fprintf(cmd.ErrOrStderr(), "tfsite bringup: nothing to do: %v\n", err)
				return nil
			}
			if err != nil {
				return err
			}
			defer d.Close()
			log.Info("bring-up started", "agent", cfg.APISocket, "stateDir", cfg.StateDir)
			return d.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	src.AddFlags(fl)
	fl.StringVar(&socket, "socket", "", "the agent's API socket (default from the config)")
	fl.StringVar(&stateDir, "state-dir", "", "state directory (default from the config)")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
