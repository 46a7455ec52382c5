package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/internal/labelvol"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// openstackFetcher reads a config drive (label config-2) when there is one,
// else the metadata service, both in OpenStack's own layout
// (openstack/latest/{meta_data.json,user_data}). gophercloud is a client of
// OpenStack's APIs, not of the metadata service, so this is plain HTTP.
func openstackFetcher(cfg Config, h *httpClient) fetcher {
	return func(ctx context.Context) (*config.PlatformData, error) {
		var meta, ud []byte
		where := ""
		files, err := configDrive(cfg.ByLabelDir).ReadFiles(config.MaxUserData, "openstack/latest/meta_data.json", "openstack/latest/user_data")
		switch {
		case err == nil:
			meta, ud, where = files[0].Data, files[1].Data, "config drive "+files[0].Device
		case errors.Is(err, readlimit.ErrTooLarge):
			return nil, fmt.Errorf("%w: %w (docs/config.md, Limits)", config.ErrInvalid, err)
		case !errors.Is(err, labelvol.ErrNoVolume):
			return nil, fmt.Errorf("OpenStack config drive: %w", err)
		default:
			if meta, err = h.mustGet(ctx, "/openstack/latest/meta_data.json"); err != nil {
				return nil, fmt.Errorf("OpenStack metadata: %w", err)
			}
			if ud, err = h.get(ctx, "/openstack/latest/user_data"); err != nil {
				return nil, fmt.Errorf("OpenStack user-data: %w", err)
			}
			where = h.base + "/openstack/latest/user_data"
		}
		d, err := decodeOpenStackMeta(meta)
		if err != nil {
			return nil, err
		}
		// A floating IP shows only in the EC2-compatible tree of the service.
		if ip, err := h.get(ctx, "/latest/meta-data/public-ipv4"); err == nil {
			d.PublicIPv4 = publicIPv4(string(ip))
		}
		if ud != nil {
			d.UserData, d.Where = ud, where
		}
		return d, nil
	}
}

// decodeOpenStackMeta reads the facts of openstack/latest/meta_data.json.
func decodeOpenStackMeta(b []byte) (*config.PlatformData, error) {
	var m struct {
		UUID             string `json:"uuid"`
		AvailabilityZone string `json:"availability_zone"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.UUID == "" {
		return nil, fmt.Errorf("%w: OpenStack meta_data.json has no uuid (%v)", errNotHere, err)
	}
	return &config.PlatformData{Name: OpenStack, InstanceID: m.UUID, Zone: m.AvailabilityZone}, nil
}
