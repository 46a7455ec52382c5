package platform

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/tfsite/tfsite/internal/labelvol"
)

// DefaultDMIDir is where Linux exposes the SMBIOS strings.
const DefaultDMIDir = "/sys/class/dmi/id"

// AzureAssetTag is the chassis asset tag every Azure VM carries.
const AzureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// DMI holds the SMBIOS strings detection reads.
type DMI struct {
	SysVendor, ProductName, ProductVersion, ProductUUID, BIOSVendor, ChassisAssetTag string
}

// ReadDMI reads the strings from dir (missing files are empty).
func ReadDMI(dir string) DMI {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(b) > 256 {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return DMI{
		SysVendor: read("sys_vendor"), ProductName: read("product_name"), ProductVersion: read("product_version"),
		ProductUUID: read("product_uuid"), BIOSVendor: read("bios_vendor"), ChassisAssetTag: read("chassis_asset_tag"),
	}
}

// Platform names the platform d identifies, in Order's priority, or "".
// The strings are those cloud-init's ds-identify and Talos match.
func (d DMI) Platform() string {
	lower := func(s string) string { return strings.ToLower(s) }
	switch {
	case d.SysVendor == "Amazon EC2" || d.BIOSVendor == "Amazon EC2" ||
		strings.Contains(lower(d.ProductVersion), "amazon") || strings.HasPrefix(lower(d.ProductUUID), "ec2"):
		return AWS
	case d.ProductName == "OpenStack Nova" || d.ProductName == "OpenStack Compute" || d.SysVendor == "OpenStack Foundation" ||
		d.ChassisAssetTag == "OpenTelekomCloud" || d.ChassisAssetTag == "SAP CCloud VM" || d.ChassisAssetTag == "HUAWEICLOUD":
		return OpenStack
	case d.ProductName == "Google Compute Engine" || d.SysVendor == "Google":
		return GCP
	case d.ChassisAssetTag == AzureAssetTag:
		return Azure
	case d.SysVendor == "Hetzner":
		return Hetzner
	}
	return ""
}

// Detect names the platform from DMI, else from an OpenStack config drive
// (a volume labelled config-2); "" when neither says.
func Detect(dmiDir, byLabelDir string) string {
	if p := ReadDMI(dmiDir).Platform(); p != "" {
		return p
	}
	if _, err := configDrive(byLabelDir).Device(); err == nil {
		return OpenStack
	}
	return ""
}

func configDrive(byLabelDir string) labelvol.Volume {
	return labelvol.Volume{Labels: []string{"config-2", "CONFIG-2"}, ByLabelDir: byLabelDir}
}
