package testrig

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Instance is what a fake cloud says about the machine.
type Instance struct {
	ID, Region, Zone, PublicIPv4 string
	UserData                     string // "" serves none (404)
}

// MetadataServer answers as one cloud's metadata service does, at the paths
// and with the headers its provider documents (GCE: Metadata-Flavor:
// Google; Azure: Metadata: true, base64 customData; Hetzner: YAML metadata;
// OpenStack: openstack/latest/meta_data.json and user_data). It stands in
// for the clouds, which cannot run here; EC2 is served by AWS's own
// amazon-ec2-metadata-mock instead (EC2MetadataMock). Requests without the
// required header are refused as the real services refuse them.
func MetadataServer(platform string, in Instance) http.Handler {
	mux := http.NewServeMux()
	text := func(path, header, value, body string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if header != "" && r.Header.Get(header) != value {
				http.Error(w, "missing "+header+" header", http.StatusForbidden)
				return
			}
			if body == "" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, body)
		})
	}
	switch platform {
	case "gcp":
		const h, v = "Metadata-Flavor", "Google"
		text("/computeMetadata/v1/instance/id", h, v, in.ID)
		text("/computeMetadata/v1/instance/zone", h, v, "projects/123456789/zones/"+in.Zone)
		text("/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip", h, v, in.PublicIPv4)
		text("/computeMetadata/v1/instance/attributes/user-data", h, v, in.UserData)
	case "azure":
		const h, v = "Metadata", "true"
		zone := strings.TrimPrefix(in.Zone, in.Region+"-")
		doc, _ := json.Marshal(map[string]any{
			"compute": map[string]string{"vmId": in.ID, "location": in.Region, "zone": zone},
			"network": map[string]any{"interface": []any{map[string]any{"ipv4": map[string]any{
				"ipAddress": []any{map[string]string{"privateIpAddress": "10.0.0.4", "publicIpAddress": in.PublicIPv4}}}}}},
		})
		text("/metadata/instance", h, v, string(doc))
		ud := ""
		if in.UserData != "" {
			ud = base64.StdEncoding.EncodeToString([]byte(in.UserData))
		}
		text("/metadata/instance/compute/customData", h, v, ud)
		text("/metadata/instance/compute/userData", h, v, "")
	case "hetzner":
		text("/hetzner/v1/metadata", "", "", fmt.Sprintf("hostname: tfsite\ninstance-id: %s\npublic-ipv4: %s\nregion: %s\navailability-zone: %s\n",
			in.ID, in.PublicIPv4, in.Region, in.Zone))
		text("/hetzner/v1/userdata", "", "", in.UserData)
	case "openstack":
		doc, _ := json.Marshal(map[string]string{"uuid": in.ID, "availability_zone": in.Zone, "hostname": "tfsite"})
		text("/openstack/latest/meta_data.json", "", "", string(doc))
		text("/openstack/latest/user_data", "", "", in.UserData)
		text("/latest/meta-data/public-ipv4", "", "", in.PublicIPv4)
	default:
		panic("testrig.MetadataServer: unknown platform " + platform)
	}
	return mux
}

// ServeMetadataIn serves h on 169.254.169.254:80 inside ns (the address is
// added to its loopback): the listening socket is made in the namespace,
// so clients run there (ns.Command) reach it as a cloud VM reaches its
// metadata service.
func ServeMetadataIn(t testing.TB, ns *Netns, h http.Handler) {
	t.Helper()
	AddMetadataAddress(t, ns)
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", "169.254.169.254:80"); return err }); err != nil {
		t.Fatalf("listening on 169.254.169.254:80 in %s: %v", ns.Name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// AddMetadataAddress puts 169.254.169.254/32 on ns's loopback.
func AddMetadataAddress(t testing.TB, ns *Netns) {
	t.Helper()
	ns.Run("ip", "addr", "replace", "169.254.169.254/32", "dev", "lo")
}

// EC2MetadataMockVersion is the amazon-ec2-metadata-mock the tests run.
const EC2MetadataMockVersion = "v1.13.0"

var aemm struct {
	once sync.Once
	path string
	err  error
}

// EC2MetadataMock builds AWS's amazon-ec2-metadata-mock from the module
// proxy once per machine (cached in the temp dir) and returns its path.
func EC2MetadataMock(t testing.TB) string {
	t.Helper()
	aemm.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "tfsite-ec2-metadata-mock-"+EC2MetadataMockVersion)
		aemm.path = filepath.Join(dir, "ec2-metadata-mock")
		if _, err := os.Stat(aemm.path); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@"+EC2MetadataMockVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			aemm.err = fmt.Errorf("building amazon-ec2-metadata-mock %s from the module proxy: %v\n%s", EC2MetadataMockVersion, err, out)
		}
	})
	if aemm.err != nil {
		t.Fatal(aemm.err)
	}
	return aemm.path
}
