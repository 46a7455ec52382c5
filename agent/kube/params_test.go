package kube

import (
	"net/netip"
	"strings"
	"testing"
)

// testParams is a valid site used across this package's tests.
func testParams() SiteParams {
	return SiteParams{
		Site:              "alpha",
		ASN:               64601,
		Pod:               netip.MustParsePrefix("10.40.0.0/16"),
		Service:           netip.MustParsePrefix("10.41.0.0/16"),
		Fabric:            netip.MustParsePrefix("10.42.0.0/16"),
		AdvertiseAddress:  netip.MustParseAddr("192.168.50.10"),
		Gateway:           netip.MustParseAddr("192.168.50.1"),
		PhysicalInterface: "eth0",
		BootstrapToken:    "abcdef.0123456789abcdef",
	}.WithDefaults()
}

func TestParseSiteParams(t *testing.T) {
	p, err := ParseSiteParams([]byte(`
site: alpha
asn: 64601
pod: 10.40.0.0/16
service: 10.41.0.0/16
fabric: 10.42.0.0/16
address: 192.168.50.10
gateway: 192.168.50.1
interface: eth0
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.NodeName != "alpha" || p.APIServerPort != 6443 || p.CRISocket != DefaultCRISocket ||
		len(p.ControllerNodes) != 1 || p.ControllerNodes[0] != p.AdvertiseAddress {
		t.Fatalf("defaults not filled: %+v", p)
	}
	if p.APIServerURL() != "https://192.168.50.10:6443" {
		t.Fatalf("APIServerURL = %s", p.APIServerURL())
	}
}

func TestParseSiteParamsRejectsUnknownKeys(t *testing.T) {
	_, err := ParseSiteParams([]byte("site: alpha\npodSubnet: 10.0.0.0/8\n"))
	if err == nil || !strings.Contains(err.Error(), "podSubnet") {
		t.Fatalf("want unknown-field error naming podSubnet, got %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	p := testParams()
	p.Site = "Alpha_1"
	p.ASN = 0
	p.Service = netip.MustParsePrefix("10.40.128.0/17") // inside pod
	p.Gateway = p.AdvertiseAddress                      // the seed's lock-out
	p.PhysicalInterface = ""
	p.BootstrapToken = "short"
	err := p.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{`site "Alpha_1"`, "asn 0", "overlaps", "not the master", `interface ""`, "bootstrapToken"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestValidateGatewayNeverAController(t *testing.T) {
	p := testParams()
	p.ControllerNodes = append(p.ControllerNodes, p.Gateway)
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "not the master") {
		t.Fatalf("gateway equal to a controller node accepted: %v", err)
	}
}

func TestValidateHostBitsAndFamily(t *testing.T) {
	p := testParams()
	p.Pod = netip.MustParsePrefix("10.40.0.1/16")
	p.Fabric = netip.MustParsePrefix("fd00::/64")
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), "host bits") || !strings.Contains(err.Error(), "IPv4") {
		t.Fatalf("got %v", err)
	}
}

func FuzzParseSiteParams(f *testing.F) {
	f.Add([]byte("site: a\nasn: 1\npod: 10.0.0.0/16\nservice: 10.1.0.0/16\nfabric: 10.2.0.0/16\naddress: 1.2.3.4\ngateway: 1.2.3.1\ninterface: eth0\n"))
	f.Add([]byte(`{"site":"x","controllerNodes":["1.2.3.4"]}`))
	f.Add([]byte("asn: -1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseSiteParams(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed params do not validate: %v", err)
		}
		if _, err := RenderInit(p); err != nil {
			t.Fatalf("valid params do not render: %v", err)
		}
	})
}
