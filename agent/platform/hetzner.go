package platform

import (
	"context"
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/tfsite/tfsite/agent/config"
)

// hetznerFetcher reads Hetzner Cloud's metadata service over plain HTTP:
// hcloud-go's metadata client would link its Prometheus instrumentation
// into the agent for two GETs.
func hetznerFetcher(h *httpClient) fetcher {
	return func(ctx context.Context) (*config.PlatformData, error) {
		b, err := h.mustGet(ctx, "/hetzner/v1/metadata")
		if err != nil {
			return nil, fmt.Errorf("reading Hetzner metadata: %w", err)
		}
		d, err := decodeHetznerMetadata(b)
		if err != nil {
			return nil, err
		}
		ud, err := h.get(ctx, "/hetzner/v1/userdata")
		if err != nil {
			return nil, fmt.Errorf("reading Hetzner user-data: %w", err)
		}
		if len(ud) > 0 {
			d.UserData, d.Where = ud, h.base+"/hetzner/v1/userdata"
		}
		return d, nil
	}
}

// decodeHetznerMetadata reads the facts of /hetzner/v1/metadata (YAML).
func decodeHetznerMetadata(b []byte) (*config.PlatformData, error) {
	var m struct {
		InstanceID       int64  `json:"instance-id"`
		Region           string `json:"region"`
		AvailabilityZone string `json:"availability-zone"`
		PublicIPv4       string `json:"public-ipv4"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil || m.InstanceID == 0 {
		return nil, fmt.Errorf("%w: Hetzner metadata has no instance-id (%v)", errNotHere, err)
	}
	return &config.PlatformData{Name: Hetzner, InstanceID: fmt.Sprint(m.InstanceID), Region: m.Region, Zone: m.AvailabilityZone,
		PublicIPv4: publicIPv4(m.PublicIPv4)}, nil
}
