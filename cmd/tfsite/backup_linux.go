package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent"
	"github.com/tfsite/tfsite/agent/alloc"
	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/cmd/internal/cli"
	"github.com/tfsite/tfsite/internal/atomicfile"
)

func init() {
	register(newBackupCmd)
	register(newRestoreCmd)
}

func newBackupCmd() *cobra.Command {
	var socket, raftDir string
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Save the allocation table (every site's ASN, prefixes and owner) to a file",
		Long: `Save the allocation table that the voters keep with Raft to FILE: a raft
snapshot of this voter's copy, with the index, term and voter set that
"tfsite restore" needs. Run it on a voter (tfsite status shows which sites
are voters; the leader's copy is the latest, a follower's may lag it by a
heartbeat). FILE is written atomically with mode 0600: it names every
site's node id, keep it like the gossip key.

Keep a recent backup off the site: a fleet with a single voter has no other
copy of its table. With --raft-dir the backup is made offline from the
newest raft snapshot of a stopped voter (for example a raft dir moved aside
because its raft.db was damaged); it holds the table as of that snapshot.

Examples:
  tfsite backup /root/alloc-$(date +%F).json
  tfsite backup --raft-dir /var/lib/tfsite/alloc/raft.damaged /root/alloc.json

Exit codes:
  0  written
  1  other error
  3  the agent is not reachable on the socket
  5  refused: this site is not a voter, or the agent is not running the
     allocator yet`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if raftDir != "" {
				data, err = alloc.BackupRaftDir(raftDir)
			} else {
				data, err = api.NewClient(socket).Backup(cmd.Context())
			}
			if err != nil {
				return clientCode(err)
			}
			b, err := alloc.DecodeBackup(data)
			if err != nil {
				return fmt.Errorf("the backup does not check out, nothing written: %w", err)
			}
			if err := atomicfile.Write(args[0], data, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], describeBackup(b))
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", config.DefaultAPISocket, "agent API socket")
	cmd.Flags().StringVar(&raftDir, "raft-dir", "", "back up a stopped voter's raft dir instead (its newest raft snapshot)")
	return cmd
}

func describeBackup(b alloc.Backup) string {
	from := "voter " + b.Site
	switch {
	case b.Site == "":
		from = "a raft snapshot"
	case b.Leader:
		from += " (leader)"
	}
	return fmt.Sprintf("allocation table of %d sites at raft index %d (term %d) from %s, voters %v", len(b.Table), b.Index, b.Term, from, b.Voters)
}

func newRestoreCmd() *cobra.Command {
	var stateDir string
	var empty bool
	var voters []string
	cmd := &cobra.Command{
		Use:   "restore [FILE]",
		Short: "Put a backup of the allocation table into a stopped voter's state dir",
		Long: `Write the allocation table saved by "tfsite backup" into the state dir of a
stopped voter, which then starts from it. Only into an empty raft dir: move
the old one aside first (mv /var/lib/tfsite/alloc/raft /var/lib/tfsite/alloc/raft.old).
The agent must be stopped (systemctl stop tfsite-agent).

When it is needed: the agent exits 8 because a lone voter's raft store is
gone, or exits 7 because it is damaged (after moving the raft dir aside). A
voter of several does not need it: started without its raft dir it catches
up from the other voters. If every voter lost its table, restore the same
backup on every voter before starting any of them (or on one, and start the
others with their raft dirs moved aside: they catch up from it).

Sites allocated after the backup keep their values: each re-asserts its
recorded allocation when it next asks (at start, then every 5 minutes; a
restart of its agent does it at once). Until then a new site could be given
their values: restore a recent backup, and restart the other sites' agents
before adding sites. There is no restore into a running fleet: rolling a
live table back would hand out again the values of every site allocated
since the backup.

--empty starts a new, empty table instead, bootstrapping --voters as a new
voter does: only when no backup exists. Sites that hold allocations
re-assert and keep them; a site that is down then loses its values to
whoever asks first.

Examples:
  tfsite restore /root/alloc-2026-11-27.json
  tfsite restore --state-dir /srv/tfsite /root/alloc.json
  tfsite restore --empty --voters lab-a

Exit codes:
  0  restored
  1  other error
  2  bad arguments
  5  refused: the raft dir holds state, the agent is running, or the backup
     belongs to another fleet or does not list this site as a voter
  7  FILE is damaged, truncated, too large or not a backup`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := filepath.Join(stateDir, agent.AllocStateDir)
			var err error
			switch {
			case empty && (len(args) > 0 || len(voters) == 0):
				return withCode(exitBadConfig, errors.New("--empty takes no FILE but --voters (the voter list of the agent's configuration)"))
			case empty:
				if err = alloc.RestoreEmpty(dir, voters); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: new, empty allocation table for voters %v\n", dir, voters)
				}
			case len(args) == 0 || len(voters) > 0:
				return withCode(exitBadConfig, errors.New("give the backup FILE (or --empty --voters LIST); --voters goes with --empty only"))
			default:
				var b alloc.Backup
				if b, err = alloc.ReadBackupFile(args[0]); err == nil {
					if err = alloc.Restore(dir, b); err == nil {
						fmt.Fprintf(cmd.OutOrStdout(), "%s: restored the %s\n", dir, describeBackup(b))
					}
				}
			}
			switch {
			case errors.Is(err, alloc.ErrBadBackup):
				return withCode(cli.ExitDamagedState, err)
			case errors.Is(err, alloc.ErrRestoreRefused):
				return withCode(exitRefused, err)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", config.DefaultStateDir, "the agent's state dir")
	cmd.Flags().BoolVar(&empty, "empty", false, "start a new, empty table instead (no backup exists)")
	cmd.Flags().StringSliceVar(&voters, "voters", nil, "with --empty: the voter site names, as in the agent's configuration")
	return cmd
}
