package platform

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/compute/metadata"

	"github.com/tfsite/tfsite/agent/config"
)

// gcpFetcher reads Compute Engine's metadata with Google's own client
// (cloud.google.com/go/compute/metadata: one small package, it sends
// Metadata-Flavor: Google and follows GCE_METADATA_HOST).
func gcpFetcher(h *httpClient) fetcher {
	c := metadata.NewWithOptions(&metadata.Options{Client: h.c})
	return func(ctx context.Context) (*config.PlatformData, error) {
		id, err := c.InstanceIDWithContext(ctx)
		if err != nil {
			if errors.As(err, new(metadata.NotDefinedError)) {
				err = fmt.Errorf("%w: %w", errNotHere, err)
			}
			return nil, fmt.Errorf("GCE instance id: %w", err)
		}
		d := &config.PlatformData{Name: GCP, InstanceID: id}
		if zone, err := c.ZoneWithContext(ctx); err == nil {
			d.Zone = zone
			if i := strings.LastIndexByte(zone, '-'); i > 0 {
				d.Region = zone[:i] // us-central1-a → us-central1
			}
		}
		if ip, err := c.ExternalIPWithContext(ctx); err == nil {
			d.PublicIPv4 = publicIPv4(ip)
		}
		ud, err := c.InstanceAttributeValueWithContext(ctx, "user-data")
		switch {
		case errors.As(err, new(metadata.NotDefinedError)): // no user-data attribute
		case err != nil:
			return nil, fmt.Errorf("GCE user-data attribute: %w", err)
		default:
			d.UserData, d.Where = []byte(ud), "metadata attribute user-data"
		}
		return d, nil
	}
}
