package platform_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/agent/platform"
	"github.com/tfsite/tfsite/internal/testrig"
)

func TestMain(m *testing.M) { testrig.Main(m) }

// report is `tfsite platform --json`.
type report struct {
	Platform, InstanceID, Region, Zone, PublicIPv4, Site, UserDataFrom, UserData string
}

// dmiDir writes SMBIOS strings as /sys/class/dmi/id holds them.
func dmiDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// platformIn runs `tfsite platform --json` inside ns, as the agent reads the
// platform at boot.
func platformIn(t *testing.T, ns *testrig.Netns, args ...string) (report, error) {
	t.Helper()
	out, err := ns.Command(append([]string{testrig.TfsiteBinary(t), "platform", "--json"}, args...)...).Output()
	var r report
	if err == nil {
		err = json.Unmarshal(out, &r)
	} else if ee, ok := err.(*exec.ExitError); ok {
		err = errors.New(strings.TrimSpace(string(ee.Stderr)))
	}
	return r, err
}

const userData = "#cloud-config\ntfsite:\n  site: cloud-a\n  voters: [cloud-a]\n"

// TestEC2WithTheRealMetadataMock: AWS's amazon-ec2-metadata-mock serves
// 169.254.169.254 with IMDSv2 enforced; the agent's reader gets a session
// token, the identity document and the user-data.
func TestEC2WithTheRealMetadataMock(t *testing.T) {
	ns := testrig.NewNetns(t, "imds")
	testrig.AddMetadataAddress(t, ns)
	mock := testrig.EC2MetadataMock(t)
	cfgFile := filepath.Join(t.TempDir(), "aemm.json")
	cfg := map[string]any{
		"metadata": map[string]any{"values": map[string]any{
			"instance-id": "i-0abc1234def567890", "public-ipv4": "203.0.113.7",
			"placement-availability-zone": "eu-west-1b", "placement-region": "eu-west-1",
		}},
		"dynamic": map[string]any{"values": map[string]any{"instance-identity-document": map[string]any{
			"accountId": "0123456789", "architecture": "x86_64", "availabilityZone": "eu-west-1b", "imageId": "ami-0b69ea66ff7391e80",
			"instanceId": "i-0abc1234def567890", "instanceType": "m5.2xlarge", "pendingTime": "2026-12-04T00:00:00Z",
			"privateIp": "10.0.0.5", "region": "eu-west-1", "version": "2017-09-30",
		}}},
		"userdata": map[string]any{"values": map[string]any{"userdata": base64.StdEncoding.EncodeToString([]byte(userData))}},
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := ns.Command(mock, "--imdsv2", "-n", "169.254.169.254", "-p", "80", "-c", cfgFile)
	var log bytes.Buffer
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
		if t.Failed() {
			t.Logf("amazon-ec2-metadata-mock's output:\n%s", log.String())
		}
	})
	// IMDSv1 is refused by the mock (IMDSv2 only): a plain GET is 401.
	if code := getIn(t, ns, "/latest/user-data"); code != 401 {
		t.Fatalf("IMDSv1 GET answered %d, want 401 (the mock must enforce IMDSv2)", code)
	}
	r, err := platformIn(t, ns, "--dmi-dir", dmiDir(t, map[string]string{"sys_vendor": "Amazon EC2", "product_name": "m5.2xlarge"}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Platform != "aws" || r.InstanceID != "i-0abc1234def567890" || r.Region != "eu-west-1" || r.Zone != "eu-west-1b" ||
		r.PublicIPv4 != "203.0.113.7" || r.UserData != userData || r.Site != "eu-west-1b-i-0abc1234def567890" {
		t.Fatalf("read %+v", r)
	}
}

// TestEachCloudByDMIAndByProbe: every other platform's service, at its
// documented paths and headers, read once as DMI names it and once found by
// probing (no DMI mark).
func TestEachCloudByDMIAndByProbe(t *testing.T) {
	cases := []struct {
		name string
		dmi  map[string]string
		in   testrig.Instance
		site string
	}{
		{"openstack", map[string]string{"product_name": "OpenStack Nova", "sys_vendor": "OpenStack Foundation"},
			testrig.Instance{ID: "5d2d6d0e-8a3c-4a41-9d1f-0e2c4e1f1a11", Zone: "nova", PublicIPv4: "198.51.100.20", UserData: userData},
			"nova-5d2d6d0e-8a3c-4a41-9d1f-0e2c4e1f1a11"},
		{"gcp", map[string]string{"product_name": "Google Compute Engine", "sys_vendor": "Google"},
			testrig.Instance{ID: "4520031799277581759", Region: "us-central1", Zone: "us-central1-a", PublicIPv4: "203.0.113.30", UserData: userData},
			"us-central1-a-4520031799277581759"},
		{"azure", map[string]string{"sys_vendor": "Microsoft Corporation", "chassis_asset_tag": platform.AzureAssetTag},
			testrig.Instance{ID: "02aab8a4-74ef-476e-8182-f6d2ba4166a6", Region: "westeurope", Zone: "westeurope-2", PublicIPv4: "203.0.113.40", UserData: userData},
			"westeurope-2-02aab8a4-74ef-476e-8182-f6d2ba4166a6"},
		{"hetzner", map[string]string{"sys_vendor": "Hetzner", "product_name": "vServer"},
			testrig.Instance{ID: "42424242", Region: "eu-central", Zone: "fsn1-dc14", PublicIPv4: "203.0.113.50", UserData: userData},
			"fsn1-dc14-42424242"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := testrig.NewNetns(t, "md")
			testrig.ServeMetadataIn(t, ns, testrig.MetadataServer(c.name, c.in))
			for _, how := range []struct {
				what string
				dmi  map[string]string
			}{{"by DMI", c.dmi}, {"by probe", map[string]string{"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"}}} {
				r, err := platformIn(t, ns, "--dmi-dir", dmiDir(t, how.dmi))
				if err != nil {
					t.Fatalf("%s: %v", how.what, err)
				}
				if r.Platform != c.name || r.InstanceID != c.in.ID || r.Zone != c.in.Zone || r.PublicIPv4 != c.in.PublicIPv4 ||
					r.UserData != userData || r.Site != c.site {
					t.Errorf("%s: read %+v", how.what, r)
				}
			}
		})
	}
}

// TestSilentMetadataDoesNotHoldBootUp: a platform DMI names whose metadata
// service accepts connections and never answers is given up after the
// timeout, and said so; with no platform mark and nothing listening,
// probing ends at once with none.
func TestSilentMetadataDoesNotHoldBootUp(t *testing.T) {
	ns := testrig.NewNetns(t, "mdsilent")
	testrig.AddMetadataAddress(t, ns)
	r, err := platformIn(t, ns, "--dmi-dir", dmiDir(t, map[string]string{"sys_vendor": "QEMU"}))
	if err != nil || r.Platform != "none" {
		t.Fatalf("bare machine: %+v, %v; want platform none", r, err)
	}
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", "169.254.169.254:80"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // accept and hold every connection: a service that hangs
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	start := time.Now()
	_, err = platformIn(t, ns, "--dmi-dir", dmiDir(t, map[string]string{"sys_vendor": "Hetzner"}), "--timeout", "3s")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "hetzner metadata did not answer within 3s") || !strings.Contains(err.Error(), "booting without") {
		t.Fatalf("silent service: %v; want the one-line notice", err)
	}
	if took > 15*time.Second {
		t.Fatalf("gave up after %s with --timeout 3s", took)
	}
}

// getIn sends a plain GET to 169.254.169.254:80 from inside ns (the socket
// is made in the namespace), waiting up to 20 s for the service to listen,
// and returns the status code.
func getIn(t *testing.T, ns *testrig.Netns, path string) int {
	t.Helper()
	var conn net.Conn
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ns.Do(func() (err error) { conn, err = net.DialTimeout("tcp", "169.254.169.254:80", time.Second); return err })
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on 169.254.169.254:80 in %s: %v", ns.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
