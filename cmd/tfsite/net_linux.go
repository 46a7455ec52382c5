package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/internal/probe"
	"github.com/tfsite/tfsite/recovery/netguard"
	"github.com/tfsite/tfsite/recovery/oob"
)

func init() { register(newNetCmd) }

// Exit codes of `tfsite net ...` (documented in their --help).
const (
	netExitFailed         = 1
	netExitBadInput       = 2
	netExitReverted       = 3
	netExitBusy           = 4
	netExitNothingPending = 5
	netExitCorrupt        = 6
)

const netExitCodesHelp = `Exit codes:
  0  done (try: the change was confirmed)
  1  failure (e.g. netlink refused a step; the message says what)
  2  bad input: invalid plan or flags (nothing was changed)
  3  try/rollback: the change was reverted (the reason is in the journal)
  4  another guarded change is in progress (its id and description are shown)
  5  confirm/rollback: nothing pending
  6  a netguard record is corrupt (the file is named)`

type netFlags struct {
	stateDir, oobDir, logLevel string
	timeout, settle            time.Duration
	targets                    []string
}

func newNetCmd() *cobra.Command {
	var f netFlags
	cmd := &cobra.Command{
		Use:   "net",
		Short: "Guarded network changes that revert themselves, and the management path",
		Long: `Network changes that undo themselves unless the host stays reachable.

"tfsite net try" snapshots links, addresses, routes (all tables) and policy
rules, records the snapshot and the plan in the state dir, applies the plan
and probes: the default gateway must answer ARP and ICMP echo, and every
target must answer (ICMP echo or TCP connect). Healthy for the settle time:
confirmed by itself. Not healthy by the deadline: the snapshot is restored and
the reason recorded in the journal. The window is run by a guard process
outside the operator's session, so an SSH session cut by the change itself
never abandons it. If the guard process dies, the agent reverts the change
once its deadline has passed, and "tfsite net recover" (run by an early boot
unit and by the agent at start) restores the snapshot.

Plan format: docs/network-plan.md. Recovery overview: docs/recovery.md.

` + netExitCodesHelp,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.stateDir, "state-dir", netguard.DefaultStateDir, "where the pending change and the journal are kept")
	pf.StringVar(&f.oobDir, "oob-state-dir", oob.DefaultStateDir, "where the management reservation is recorded")
	pf.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(newNetTryCmd(&f), newNetGuardCmd(&f), newNetDecideCmd(&f, true), newNetDecideCmd(&f, false),
		newNetShowCmd(&f), newNetRecoverCmd(&f), newNetOOBCmd(&f))
	return cmd
}

func netLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, withCode(netExitBadInput, fmt.Errorf("--log-level %q: want debug, info, warn or error", level))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// newGuard builds a Guard from the flags; the management address recorded
// by "tfsite net oob up" is protected from every plan.
func newGuard(cmd *cobra.Command, f *netFlags) (*netguard.Guard, error) {
	cfg, log, err := guardConfig(cmd, f)
	if err != nil {
		return nil, err
	}
	g, err := netguard.New(cfg, log)
	if err != nil {
		return nil, withCode(netExitBadInput, err)
	}
	return g, nil
}

// guardConfig is the Guard configuration and logger the flags describe.
func guardConfig(cmd *cobra.Command, f *netFlags) (netguard.Config, *slog.Logger, error) {
	log, err := netLogger(f.logLevel, cmd.ErrOrStderr())
	if err != nil {
		return netguard.Config{}, nil, err
	}
	cfg := netguard.Default()
	cfg.StateDir = f.stateDir
	if f.timeout != 0 {
		cfg.Timeout = f.timeout
	}
	if f.settle != 0 {
		cfg.Settle = f.settle
	}
	for _, s := range f.targets {
		t, err := probe.Parse(s)
		if err != nil {
			return cfg, nil, withCode(netExitBadInput, fmt.Errorf("--target: %w", err))
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	res, err := oob.Load(f.oobDir)
	if err != nil {
		return cfg, nil, withCode(netExitCorrupt, err)
	}
	if res != nil {
		cfg.Protected = append(cfg.Protected, netguard.Protected{Link: res.Link, Address: res.Address})
	}
	return cfg, log, nil
}

// withGuard runs f with a Guard built from the flags.
func withGuard(f *netFlags, run func(*cobra.Command, *netguard.Guard) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		g, err := newGuard(cmd, f)
		if err != nil {
			return err
		}
		defer g.Close()
		return run(cmd, g)
	}
}

// netCode maps netguard's sentinels to the documented exit codes.
func netCode(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, netguard.ErrInvalidPlan):
		return withCode(netExitBadInput, err)
	case errors.Is(err, netguard.ErrReverted):
		return withCode(netExitReverted, err)
	case errors.Is(err, netguard.ErrBusy):
		return withCode(netExitBusy, err)
	case errors.Is(err, netguard.ErrNothingPending):
		return withCode(netExitNothingPending, err)
	case errors.Is(err, netguard.ErrCorrupt):
		return withCode(netExitCorrupt, err)
	}
	return withCode(netExitFailed, err)
}

func newNetDecideCmd(f *netFlags, confirm bool) *cobra.Command {
	use, short, verb := "rollback", "Revert the pending guarded change now", "reverted"
	if confirm {
		use, short, verb = "confirm", "Keep the pending guarded change now", "confirmed"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

When a "tfsite net try" (or the agent) is guarding the change, it is told to
` + use + ` and this command waits for it; when the guarding process is gone,
this command does it itself. With nothing pending it changes nothing.

Example:
  tfsite net ` + use + `

` + netExitCodesHelp,
		Args: cobra.NoArgs,
		RunE: withGuard(f, func(cmd *cobra.Command, g *netguard.Guard) error {
			var p *netguard.Pending
			var e netguard.Event
			var err error
			if confirm {
				p, e, err = g.Confirm(cmd.Context())
			} else {
				p, e, err = g.Rollback(cmd.Context())
			}
			if errors.Is(err, netguard.ErrNothingPending) {
				return withCode(netExitNothingPending, fmt.Errorf("net %s: nothing pending in %s (no guarded change is in its window; `tfsite net show` lists the journal)", use, f.stateDir))
			}
			if err != nil {
				return netCode(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), netguard.FormatEvent(e))
			if e.Event != verb {
				return withCode(netExitFailed, fmt.Errorf("change %s ended as %s before the %s arrived", p.ID, e.Event, use))
			}
			return nil
		}),
	}
}

func newNetShowCmd(f *netFlags) *cobra.Command {
	var asJSON bool
	var events int
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show links, addresses, routes, rules, the pending change and the journal",
		Long: `Show the host's network as netguard sees it, the pending change (if any),
the management reservation and the last journal events.

Examples:
  tfsite net show
  tfsite net show --json | jq .pending

` + netExitCodesHelp,
		Args: cobra.NoArgs,
		RunE: withGuard(f, func(cmd *cobra.Command, g *netguard.Guard) error {
			st, err := g.Show(events)
			if err != nil {
				return netCode(err)
			}
			res, _ := oob.Load(f.oobDir)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					netguard.Status
					Management *oob.Reservation `json:"management,omitempty"`
				}{st, res})
			}
			printStatus(cmd.OutOrStdout(), st, res)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&events, "events", 10, "how many journal events to show")
	return cmd
}

func printStatus(w io.Writer, st netguard.Status, res *oob.Reservation) {
	fmt.Fprintln(w, "links:")
	for _, l := range st.State.Links {
		state := "down"
		if l.Up {
			state = "up"
		}
		extra := ""
		if l.Master != "" {
			extra = " master " + l.Master
		}
		if l.Kind != "" {
			extra += " (" + l.Kind + ")"
		}
		var addrs []string
		for _, a := range st.State.AddressesOn(l.Name) {
			addrs = append(addrs, a.Address.String())
		}
		fmt.Fprintf(w, "  %-15s %-4s mtu %-5d%s %s\n", l.Name, state, l.MTU, extra, strings.Join(addrs, " "))
	}
	fmt.Fprintln(w, "routes:")
	for _, r := range st.State.Routes {
		if !r.Kernel() {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
	fmt.Fprintln(w, "rules:")
	for _, r := range st.State.Rules {
		fmt.Fprintf(w, "  %s\n", r)
	}
	if res != nil {
		fmt.Fprintf(w, "management: %s on %s, table %d, %s\n", res.Address, res.Link, res.Table, res.Mode)
	}
	if st.Pending != nil {
		fmt.Fprintf(w, "pending: %s\n", st.Pending)
	} else {
		fmt.Fprintln(w, "pending: none")
	}
	fmt.Fprintln(w, "journal:")
	for _, e := range st.Events {
		fmt.Fprintf(w, "  %s\n", netguard.FormatEvent(e))
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "problem: %s\n", e)
	}
}

func newNetRecoverCmd(f *netFlags) *cobra.Command {
	var salvage bool
	cmd := &cobra.Command{
		Use:   "recover [--salvage]",
		Short: "Revert a change left pending by a process that died (boot unit, agent start)",
		Long: `Restore the snapshot of a guarded change whose guarding process died before
confirming it, so a crash never leaves a half-applied network. Run by the
early boot unit tfsite-net-recover.service (with --salvage) and by the agent
when it starts. With nothing pending it does nothing and exits 0.

A damaged pending.json (a disk fault, a bad edit) is reported with its path
and the way out (exit 6). With --salvage its snapshot, when intact, is still
restored (decoded strictly and checked; damage elsewhere in the record does
not matter), the file is moved aside to pending.json.damaged-TIME and the
revert is journaled. A record with no readable snapshot reverts nothing:
move it aside, then use the console's "Reset underlay to DHCP" entry.

Examples:
  tfsite net recover
  tfsite net recover --salvage     # what the boot unit runs

` + netExitCodesHelp,
		Args: cobra.NoArgs,
		RunE: withGuard(f, func(cmd *cobra.Command, g *netguard.Guard) error {
			run := g.Recover
			if salvage {
				run = g.Salvage
			}
			p, err := run()
			if errors.Is(err, netguard.ErrNothingPending) {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing pending")
				return nil
			}
			if err != nil {
				return netCode(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reverted %s\n", p)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&salvage, "salvage", false, "also revert from a damaged record whose snapshot is intact (moved aside)")
	return cmd
}

func newNetOOBCmd(f *netFlags) *cobra.Command {
	cfg := oob.Default()
	var addr, gw string
	cmd := &cobra.Command{
		Use:   "oob-up --link IFACE --address CIDR [--gateway IP]",
		Short: "Route the management interface through its own table, out of TF's hands",
		Long: `Set up the out-of-band management path: the management address gets a
routing table of its own (the segment's route, and a default route via
--gateway when given) and a policy rule "from ADDRESS lookup TABLE" (or a VRF
where the kernel has one, in --mode auto|vrf). The reservation is recorded so
that guarded plans may not remove the address and the underlay/TF parts never
pick the interface. sshd listens there (the image's unit, docs/recovery.md).

Example:
  tfsite net oob-up --link eth1 --address 192.168.100.10/24 --gateway 192.168.100.1

` + netExitCodesHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := netLogger(f.logLevel, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg.StateDir = f.oobDir
			var errs []error
			if p, err := netip.ParsePrefix(addr); err == nil {
				cfg.Address = p
			} else {
				errs = append(errs, fmt.Errorf("--address %q: want CIDR, e.g. 192.168.100.10/24", addr))
			}
			if gw != "" {
				if a, err := netip.ParseAddr(gw); err == nil {
					cfg.Gateway = a
				} else {
					errs = append(errs, fmt.Errorf("--gateway %q: want an IP address", gw))
				}
			}
			if len(errs) > 0 {
				return withCode(netExitBadInput, errors.Join(errs...))
			}
			if err := cfg.Validate(); err != nil {
				return withCode(netExitBadInput, err)
			}
			res, err := oob.Apply(cfg, log)
			if err != nil {
				return withCode(netExitFailed, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "management %s on %s: table %d, %s\n", res.Address, res.Link, res.Table, res.Mode)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Link, "link", "", "management interface (never TF's PHYSICAL_INTERFACE)")
	fl.StringVar(&addr, "address", "", "management address in CIDR form")
	fl.StringVar(&gw, "gateway", "", "router of the management segment (optional)")
	fl.Uint32Var(&cfg.Table, "table", cfg.Table, "routing table of the management path")
	fl.Uint32Var(&cfg.Priority, "priority", cfg.Priority, "priority of the policy rule")
	fl.StringVar(&cfg.Mode, "mode", cfg.Mode, "auto (VRF if the kernel has it, else rule), vrf or rule")
	return cmd
}
