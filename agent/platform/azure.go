package platform

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tfsite/tfsite/agent/config"
)

// azureFetcher reads Azure's Instance Metadata Service over plain HTTP with
// the required Metadata: true header (Azure's Go SDK has no small IMDS
// client). User-data is the VM's customData (base64), else its userData.
func azureFetcher(h *httpClient) fetcher {
	hdr := []string{"Metadata", "true"}
	return func(ctx context.Context) (*config.PlatformData, error) {
		b, err := h.mustGet(ctx, "/metadata/instance?api-version=2021-02-01", hdr...)
		if err != nil {
			return nil, fmt.Errorf("reading Azure instance metadata: %w", err)
		}
		d, err := decodeAzureInstance(b)
		if err != nil {
			return nil, err
		}
		for _, p := range []string{
			"/metadata/instance/compute/customData?api-version=2019-06-01&format=text",
			"/metadata/instance/compute/userData?api-version=2021-01-01&format=text",
		} {
			enc, err := h.get(ctx, p, hdr...)
			if err != nil {
				return nil, fmt.Errorf("reading Azure user-data: %w", err)
			}
			if s := strings.TrimSpace(string(enc)); s != "" {
				ud, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return nil, fmt.Errorf("%w: Azure %s is not base64: %v", config.ErrInvalid, p, err)
				}
				d.UserData, d.Where = ud, "IMDS "+strings.SplitN(p, "?", 2)[0]
				break
			}
		}
		return d, nil
	}
}

// decodeAzureInstance reads the facts of IMDS's /metadata/instance document.
func decodeAzureInstance(b []byte) (*config.PlatformData, error) {
	var inst struct {
		Compute struct {
			VMID     string `json:"vmId"`
			Location string `json:"location"`
			Zone     string `json:"zone"`
		} `json:"compute"`
		Network struct {
			Interface []struct {
				IPv4 struct {
					IPAddress []struct {
						PublicIPAddress string `json:"publicIpAddress"`
					} `json:"ipAddress"`
				} `json:"ipv4"`
			} `json:"interface"`
		} `json:"network"`
	}
	if err := json.Unmarshal(b, &inst); err != nil || inst.Compute.VMID == "" {
		return nil, fmt.Errorf("%w: Azure instance metadata has no compute.vmId (%v)", errNotHere, err)
	}
	d := &config.PlatformData{Name: Azure, InstanceID: inst.Compute.VMID, Region: inst.Compute.Location}
	if inst.Compute.Zone != "" {
		d.Zone = inst.Compute.Location + "-" + inst.Compute.Zone
	}
	for _, i := range inst.Network.Interface {
		for _, a := range i.IPv4.IPAddress {
			if ip := publicIPv4(a.PublicIPAddress); ip.IsValid() && !d.PublicIPv4.IsValid() {
				d.PublicIPv4 = ip
			}
		}
	}
	return d, nil
}
