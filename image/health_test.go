package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHealthCheckRebootsOnlyOnTrial runs the appliance's health-check script
// with tfsite and systemctl stand-ins on PATH: an unhealthy boot on trial
// (LoaderBootCountPath set) reboots; one with no boot counter fails without
// rebooting, which would only loop.
func TestHealthCheckRebootsOnlyOnTrial(t *testing.T) {
	script, err := filepath.Abs("rootfs/usr/lib/tfsite/health-check")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		allocated, on bool
		wantExit      int
		wantReboot    bool
		wantLine      string
	}{
		{"healthy", true, true, 0, false, "healthy"},
		{"unhealthy on trial", false, true, 1, true, "rebooting"},
		{"unhealthy, no counter", false, false, 1, false, "not on trial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			os.Mkdir(bin, 0o755)
			status := "1"
			if tc.allocated {
				status = "0"
			}
			calls := filepath.Join(dir, "systemctl.calls")
			os.WriteFile(filepath.Join(bin, "tfsite"), []byte("#!/bin/sh\nexit "+status+"\n"), 0o755)
			os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\n"), 0o755)
			counter := filepath.Join(dir, "LoaderBootCountPath")
			if tc.on {
				os.WriteFile(counter, []byte("x"), 0o644)
			}
			cmd := exec.Command(script)
			cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin", "TFSITE_HEALTH_TIMEOUT=1",
				"TFSITE_BOOT_COUNT_VAR="+counter, "TFSITE_ADMIN_CONF="+filepath.Join(dir, "no-admin.conf"))
			out, err := cmd.CombinedOutput()
			exit := 0
			if ee, ok := err.(*exec.ExitError); ok {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(calls)
			if exit != tc.wantExit || strings.Contains(string(got), "reboot") != tc.wantReboot || !strings.Contains(string(out), tc.wantLine) {
				t.Fatalf("exit %d, systemctl calls %q, output %q; want exit %d, reboot %v, a line with %q",
					exit, got, out, tc.wantExit, tc.wantReboot, tc.wantLine)
			}
		})
	}
}
