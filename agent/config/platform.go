package config

import (
	"context"
	"net/netip"
	"strings"

	"github.com/tfsite/tfsite/agent/sitename"
)

// Platform is the cloud the appliance runs on, as agent/platform reads it
// from DMI and the platform's metadata service. Read returns nil (and no
// error) when there is no platform or its metadata did not answer in time;
// an error is bad input (ErrInvalid), e.g. user-data over MaxUserData.
type Platform interface {
	Read(ctx context.Context) (*PlatformData, error)
}

// PlatformData is what a platform hands the machine.
type PlatformData struct {
	// Name is aws, openstack, gcp, azure or hetzner.
	Name string
	// UserData is the platform's user-data (nil: none); Where names its source.
	UserData []byte
	Where    string
	// Facts about the instance; empty when the platform does not say.
	InstanceID string
	Region     string
	Zone       string
	// PublicIPv4 is the address the instance is reached at from outside
	// (behind the cloud's NAT on aws, gcp, azure and openstack floating IPs).
	PublicIPv4 netip.Addr
}

// applyFacts sets the defaults a platform's facts give: the site name
// (zone, else region, then the instance id) and the address to advertise
// (the public IPv4). Every other source overrides them. It reports whether
// it set something.
func applyFacts(p *PlatformData, c *Config) bool {
	set := false
	if name := SiteFromFacts(p.Zone, p.Region, p.InstanceID); name != "" {
		c.Site, set = name, true
	}
	if p.PublicIPv4.IsValid() {
		c.Gossip.AdvertiseAddress, set = p.PublicIPv4.String(), true
	}
	return set
}

// SiteFromFacts makes a site name from a platform's zone (else region) and
// instance id: lower case, runs of other characters as one '-', at most
// sitename.MaxLen (the instance id's end is kept: it is what differs).
// "" when there is no instance id.
func SiteFromFacts(zone, region, instanceID string) string {
	id := dnsLabel(instanceID)
	if id == "" {
		return ""
	}
	prefix := dnsLabel(zone)
	if prefix == "" {
		prefix = dnsLabel(region)
	}
	name := id
	if prefix != "" {
		name = prefix + "-" + id
	}
	if len(name) > sitename.MaxLen {
		name = strings.TrimLeft(name[len(name)-sitename.MaxLen:], "-")
	}
	if !sitename.Valid(name) {
		return ""
	}
	return name
}

// dnsLabel lowercases s and turns every run of characters outside
// [a-z0-9] into one '-', trimmed at both ends.
func dnsLabel(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	return b.String()
}
