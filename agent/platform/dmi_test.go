package platform

import "testing"

func TestDMINamesThePlatform(t *testing.T) {
	for want, dmis := range map[string][]DMI{
		AWS:       {{SysVendor: "Amazon EC2"}, {ProductVersion: "4.11.amazon"}, {ProductUUID: "EC2E1916-9099-7CAF-FD21-012345ABCDEF"}},
		OpenStack: {{ProductName: "OpenStack Nova"}, {SysVendor: "OpenStack Foundation"}, {ChassisAssetTag: "OpenTelekomCloud"}},
		GCP:       {{ProductName: "Google Compute Engine"}, {SysVendor: "Google"}},
		Azure:     {{SysVendor: "Microsoft Corporation", ChassisAssetTag: AzureAssetTag}},
		Hetzner:   {{SysVendor: "Hetzner"}},
		"":        {{}, {SysVendor: "QEMU", ProductName: "Standard PC (Q35 + ICH9, 2009)"}, {SysVendor: "Microsoft Corporation", ProductName: "Virtual Machine"}, {SysVendor: "Dell Inc."}},
	} {
		for _, d := range dmis {
			if got := d.Platform(); got != want {
				t.Errorf("%+v: %q, want %q", d, got, want)
			}
		}
	}
}

func TestReadDMIIgnoresWhatIsMissing(t *testing.T) {
	if d := ReadDMI(t.TempDir()); d != (DMI{}) {
		t.Fatalf("empty dir read as %+v", d)
	}
}
