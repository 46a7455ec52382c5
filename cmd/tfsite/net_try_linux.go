package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/internal/detach"
	"github.com/tfsite/tfsite/recovery/netguard"
)

func newNetTryCmd(f *netFlags) *cobra.Command {
	var planFile string
	cmd := &cobra.Command{
		Use:   "try --plan FILE",
		Short: "Apply a plan in a guarded window: confirmed when healthy, reverted when not",
		Long: `Apply a network plan (docs/network-plan.md) and guard it.

The plan is validated against this host first (every link, address and route
it names must exist; it may not take the management address away); an invalid
plan changes nothing and is reported at once. The window is then handed to a
guard process outside this session: a transient systemd unit
(tfsite-net-guard-ID.service) where systemd runs the host in this network
namespace, else a process in a session of its own (log: STATE-DIR/guard.log).
It writes the snapshot and the plan to the state dir, applies the plan and
probes every 250 ms. The change is confirmed when every probe passes for
--settle without a failure, and reverted when that has not happened by
--timeout, or on "tfsite net rollback". "tfsite net confirm" keeps it at once.

This command follows the window and prints how it ended. A change that cuts
off the SSH session it was typed in still reverts by itself: a hang-up
(SIGHUP) or a killed session only ends this follower, never the window.
SIGINT (Ctrl-C) or SIGTERM here rolls the change back. Should the guard
process itself be killed, the agent (or this command, while it runs) reverts
the change once its deadline has passed.

Examples:
  tfsite net try --plan /etc/tfsite/plans/vhost0.yaml
  tfsite net try --plan static.yaml --timeout 30s --target tcp:10.0.0.5:6443

` + netExitCodesHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A hang-up only ends what this terminal shows; the window runs on
			// in its guard process, and this follower reports when it can.
			signal.Ignore(syscall.SIGHUP)
			if planFile == "" {
				return withCode(netExitBadInput, errors.New("--plan is required: a plan file (docs/network-plan.md)"))
			}
			plan, err := netguard.ReadPlanFile(planFile)
			if err != nil {
				return withCode(netExitBadInput, err)
			}
			cfg, log, err := guardConfig(cmd, f)
			if err != nil {
				return err
			}
			g, err := netguard.New(cfg, log)
			if err != nil {
				return withCode(netExitBadInput, err)
			}
			defer g.Close()
			if err := g.Precheck(plan); err != nil {
				return netCode(err)
			}
			req := &netguard.Request{ID: netguard.NewID(time.Now(), os.Getpid()), Plan: plan,
				Timeout: netguard.Duration(cfg.Timeout), Settle: netguard.Duration(cfg.Settle), Targets: f.targets}
			spec, err := guardSpec(f, req.ID)
			if err != nil {
				return withCode(netExitFailed, err)
			}
			if err := g.Store().WriteRequest(req); err != nil {
				return withCode(netExitFailed, fmt.Errorf("handing the change to its guard process (nothing was changed): %w", err))
			}
			st, err := detach.Start(cmd.Context(), spec, log)
			if err != nil {
				g.Store().CancelRequest(req.ID)
				return withCode(netExitFailed, fmt.Errorf("starting the guard process (nothing was changed): %w", err))
			}
			log.Info("change handed to its guard", "id", req.ID, "guard", st.String(), "timeout", cfg.Timeout)
			out, err := g.Follow(cmd.Context(), req.ID, fmt.Sprintf("tfsite net try (pid %d)", os.Getpid()))
			if err != nil {
				return netCode(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "confirmed %s: %s\n", out.ID, out.Reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&planFile, "plan", "", "plan file (YAML, docs/network-plan.md)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 0, "deadline to become healthy (default 10s)")
	cmd.Flags().DurationVar(&f.settle, "settle", 0, "how long probes must pass in a row to confirm (default 3s)")
	cmd.Flags().StringArrayVar(&f.targets, "target", nil, "extra probe target icmp:ADDR or tcp:ADDR:PORT (repeatable)")
	return cmd
}

// guardSpec is how `tfsite net try` starts `tfsite net guard` for change id:
// this binary, absolute state dirs (a unit runs in /).
func guardSpec(f *netFlags, id string) (detach.Spec, error) {
	exe, err := os.Executable()
	if err != nil {
		return detach.Spec{}, fmt.Errorf("finding this program to start the guard process: %w", err)
	}
	state, err := filepath.Abs(f.stateDir)
	if err != nil {
		return detach.Spec{}, fmt.Errorf("--state-dir: %w", err)
	}
	oobDir, err := filepath.Abs(f.oobDir)
	if err != nil {
		return detach.Spec{}, fmt.Errorf("--oob-state-dir: %w", err)
	}
	return detach.Spec{
		Argv:        []string{exe, "net", "guard", "--request", id, "--state-dir", state, "--oob-state-dir", oobDir, "--log-level", f.logLevel},
		Unit:        "tfsite-net-guard-" + id + ".service",
		Description: "tfsite: guarded network change " + id,
		LogFile:     filepath.Join(state, "guard.log"),
	}, nil
}

func newNetGuardCmd(f *netFlags) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:    "guard --request ID",
		Hidden: true,
		Short:  "Run the window of a change handed over by tfsite net try (it starts this; not for use by hand)",
		Long: `Run the guarded window of the change "tfsite net try" handed over as
STATE-DIR/request-ID.json: take the state dir's lock, snapshot, apply, probe,
confirm or revert, as "tfsite net try" describes. "tfsite net try" starts it
outside the operator's session (a transient systemd unit or a process in a
session of its own). SIGHUP is ignored; SIGINT/SIGTERM revert the change.

Example (what tfsite net try runs):
  tfsite net guard --request 20261125T181000.026Z-4242 --state-dir /var/lib/tfsite/net

` + netExitCodesHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signal.Ignore(syscall.SIGHUP)
			if err := netguard.CheckID(id); err != nil {
				return withCode(netExitBadInput, fmt.Errorf("--request: %w", err))
			}
			base, log, err := guardConfig(cmd, f)
			if err != nil {
				return err
			}
			store := netguard.Store{Dir: base.StateDir}
			// Until TryRequest runs, a failure is told to the waiting
			// foreground here; a withdrawn request has nobody waiting.
			refuse := func(code int, err error) error {
				if werr := store.WriteRefusal(id, err); werr != nil {
					log.Warn("telling tfsite net try why the change was not applied", "id", id, "err", werr)
				}
				return withCode(code, err)
			}
			req, err := store.TakeRequest(id)
			if errors.Is(err, netguard.ErrNothingPending) {
				return netCode(err)
			}
			if err != nil {
				return refuse(netExitCorrupt, err)
			}
			cfg, err := req.Config(base)
			if err != nil {
				return refuse(netExitBadInput, err)
			}
			g, err := netguard.New(cfg, log)
			if err != nil {
				return refuse(netExitBadInput, err)
			}
			defer g.Close()
			out, err := g.TryRequest(cmd.Context(), req)
			if err != nil {
				return netCode(err)
			}
			log.Info("guarded change confirmed", "id", out.ID, "reason", out.Reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "request", "", "the change id tfsite net try handed over")
	return cmd
}
