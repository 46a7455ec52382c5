package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/platform"
)

func init() { register(newPlatformCmd) }

// platformReport is what `tfsite platform --json` prints.
type platformReport struct {
	Platform   string     `json:"platform"`
	InstanceID string     `json:"instanceId,omitempty"`
	Region     string     `json:"region,omitempty"`
	Zone       string     `json:"zone,omitempty"`
	PublicIPv4 netip.Addr `json:"publicIPv4,omitzero"`
	// Site is the site name the facts give when no source names one.
	Site          string `json:"site,omitempty"`
	UserDataFrom  string `json:"userDataFrom,omitempty"`
	UserData      string `json:"userData,omitempty"`
	TookMillisecs int64  `json:"tookMs"`
}

func newPlatformCmd() *cobra.Command {
	cfg := platform.Default()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "platform",
		Short: "Show the cloud this machine runs on and what its metadata hands the agent",
		Long: `Detect the platform as the agent does and print what it reads: the
instance id, region, zone and public IPv4 (which become the default site
name and advertised address) and the user-data whose "tfsite:" key the agent
applies (docs/config.md, "Clouds").

Detection reads the SMBIOS strings (/sys/class/dmi/id) first: Amazon EC2,
OpenStack (or a config drive labelled config-2), Google Compute Engine,
Microsoft Azure and Hetzner Cloud each leave their mark there. When none
does, the metadata services at 169.254.169.254 are probed for --probe-timeout
(2s): on bare metal nothing answers and nothing is read. A platform that is
named but whose metadata does not answer within --timeout (30s) is reported
and left out: boot never waits longer.

EC2 is read with IMDSv2 (a session token); IMDSv1 is refused unless --imdsv1.

Examples:
  tfsite platform
  tfsite platform --json | jq -r .site
  tfsite platform --platform openstack --metadata-endpoint http://169.254.169.254

Exit codes:
  0  read (or no platform: "platform: none")
  1  the named platform's metadata did not answer in time
  2  bad flag, or user-data over its limit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var notice string
			r, err := platform.New(cfg, slog.New(slog.DiscardHandler), func(line string) { notice = line })
			if err != nil {
				return withCode(2, err)
			}
			start := time.Now()
			d, err := r.Read(cmd.Context())
			if err != nil {
				return withCode(2, err)
			}
			if notice != "" {
				return withCode(1, fmt.Errorf("%s", strings.TrimPrefix(notice, "tfsite: ")))
			}
			rep := platformReport{Platform: "none", TookMillisecs: time.Since(start).Milliseconds()}
			if d != nil {
				rep = platformReport{Platform: d.Name, InstanceID: d.InstanceID, Region: d.Region, Zone: d.Zone, PublicIPv4: d.PublicIPv4,
					Site: config.SiteFromFacts(d.Zone, d.Region, d.InstanceID), UserDataFrom: d.Where, UserData: string(d.UserData),
					TookMillisecs: rep.TookMillisecs}
			}
			if asJSON {
				return printJSON(cmd, rep)
			}
			return writePlatform(cmd, rep)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Platform, "platform", cfg.Platform, "auto, none, or "+strings.Join(platform.Order, ", "))
	fl.StringVar(&cfg.Endpoint, "metadata-endpoint", cfg.Endpoint, "the metadata service's base URL")
	fl.StringVar(&cfg.DMIDir, "dmi-dir", cfg.DMIDir, "where the SMBIOS strings are read")
	fl.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound for a named platform's metadata, retries included")
	fl.DurationVar(&cfg.ProbeTimeout, "probe-timeout", cfg.ProbeTimeout, "bound for probing when DMI names no platform")
	fl.BoolVar(&cfg.AllowIMDSv1, "imdsv1", false, "EC2: fall back to IMDSv1 when IMDSv2 fails")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writePlatform(cmd *cobra.Command, r platformReport) error {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "platform   %s\n", r.Platform)
	if r.Platform == "none" {
		fmt.Fprintf(w, "(nothing answered in %d ms: bare metal or an unknown hypervisor)\n", r.TookMillisecs)
		return nil
	}
	fmt.Fprintf(w, "instance   %s\nregion     %s\nzone       %s\n", r.InstanceID, r.Region, r.Zone)
	if r.PublicIPv4.IsValid() {
		fmt.Fprintf(w, "public     %s (advertised unless configured)\n", r.PublicIPv4)
	}
	fmt.Fprintf(w, "site       %s (unless configured)\n", r.Site)
	if r.UserDataFrom == "" {
		fmt.Fprintln(w, "user-data  none")
		return nil
	}
	c := config.Default()
	switch ok, err := config.ApplyUserData([]byte(r.UserData), &c); {
	case err != nil:
		fmt.Fprintf(w, "user-data  %s: %d bytes; its tfsite: key is invalid: %v\n", r.UserDataFrom, len(r.UserData), err)
	case !ok:
		fmt.Fprintf(w, "user-data  %s: %d bytes, without a tfsite: key (left to cloud-init)\n", r.UserDataFrom, len(r.UserData))
	default:
		fmt.Fprintf(w, "user-data  %s: %d bytes with a tfsite: key (site %q)\n", r.UserDataFrom, len(r.UserData), c.Site)
	}
	return nil
}
