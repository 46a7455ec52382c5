package platform

import (
	"testing"

	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/agent/sitename"
)

// FuzzDecodeMetadata: the metadata documents an instance is handed (Azure's
// JSON, Hetzner's YAML, OpenStack's meta_data.json) never panic the
// decoders, and what they accept is usable: an instance id, a public
// address that is a global IPv4 or none, a derived site name that is valid
// or empty.
func FuzzDecodeMetadata(f *testing.F) {
	f.Add(byte(0), []byte(`{"compute":{"vmId":"02aab8a4","location":"westeurope","zone":"2"},"network":{"interface":[{"ipv4":{"ipAddress":[{"publicIpAddress":"203.0.113.40"}]}}]}}`))
	f.Add(byte(1), []byte("instance-id: 42\nregion: eu-central\navailability-zone: fsn1-dc14\npublic-ipv4: 203.0.113.50\n"))
	f.Add(byte(2), []byte(`{"uuid":"5d2d6d0e","availability_zone":"nova"}`))
	f.Add(byte(1), []byte("instance-id: [1]\n"))
	f.Add(byte(0), []byte(`{"compute":{"vmId":""}}`))
	decoders := []func([]byte) (*config.PlatformData, error){decodeAzureInstance, decodeHetznerMetadata, decodeOpenStackMeta}
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		d, err := decoders[int(which)%len(decoders)](b)
		if err != nil {
			return
		}
		if d.InstanceID == "" {
			t.Fatalf("accepted without an instance id: %+v", d)
		}
		if a := d.PublicIPv4; a.IsValid() && (!a.Is4() || !a.IsGlobalUnicast()) {
			t.Fatalf("public address %s", a)
		}
		if s := config.SiteFromFacts(d.Zone, d.Region, d.InstanceID); s != "" && !sitename.Valid(s) {
			t.Fatalf("site name %q from %+v", s, d)
		}
	})
}
