package config

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// comments returns a valid YAML document of n bytes: comment lines only.
func comments(n int) string {
	line := "# padding padding padding padding padding padding padding padding\n"
	s := strings.Repeat(line, n/len(line)+1)[:n-1]
	return s + "\n"
}

// Every input of Load has a limit; one byte over is refused with one line
// naming the input and the limit (and wraps ErrInvalid: exit code 2).
func TestLoadRefusesOversizedInputs(t *testing.T) {
	dir, seed := seedDirs(t)
	bigConfig := write(t, dir, "big.yaml", comments(MaxConfigFile+1))
	for name, tc := range map[string]struct {
		src  func() Sources
		want string
	}{
		"config file": {func() Sources { return Sources{File: bigConfig} },
			"config file " + bigConfig + " is larger than 1 MiB, the limit"},
		"tfsite.config= file": {func() Sources {
			return Sources{Cmdline: write(t, dir, "cmdline-config", "tfsite.config="+bigConfig)}
		}, "tfsite.config: config file " + bigConfig + " is larger than 1 MiB, the limit"},
		"kernel command line": {func() Sources {
			return Sources{Cmdline: write(t, dir, "cmdline", "tfsite.site=a "+strings.Repeat("quiet ", MaxCmdline/6+1))}
		}, "kernel command line " + filepath.Join(dir, "cmdline") + " is larger than 64 KiB, the limit"},
		"user-data": {func() Sources {
			write(t, seed, "user-data", "#cloud-config\ntfsite: {site: a}\n"+comments(MaxUserData))
			return Sources{NoCloud: NoCloudDir(seed)}
		}, "NoCloud user-data " + filepath.Join(seed, "user-data") + " is larger than 1 MiB, the limit"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(context.Background(), tc.src())
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v\nwant one line wrapping ErrInvalid with %q", err, tc.want)
			}
		})
	}
	// At the limit is fine.
	if _, err := Load(context.Background(), Sources{File: write(t, dir, "at.yaml", comments(MaxConfigFile))}); err != nil {
		t.Fatalf("config file at the limit: %v", err)
	}
}

// A NoCloud source that hands over more than MaxUserData is refused too.
type bigSeed struct{}

func (bigSeed) UserData(context.Context) ([]byte, string, error) {
	return []byte(comments(MaxUserData + 1)), "/dev/sr0", nil
}

func TestLoadRefusesOversizedUserDataFromAnySeed(t *testing.T) {
	_, err := Load(context.Background(), Sources{NoCloud: bigSeed{}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "NoCloud user-data /dev/sr0 is larger than 1 MiB, the limit") {
		t.Fatalf("err = %v", err)
	}
}

func TestKeyFileLimit(t *testing.T) {
	c := validConfig(t)
	c.Gossip.Key, c.Gossip.KeyFile = "", write(t, t.TempDir(), "gossip.key", base64.StdEncoding.EncodeToString(make([]byte, 32))+strings.Repeat("\n", MaxKeyFile))
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "gossip.keyFile: key file "+c.Gossip.KeyFile+" is larger than 4 KiB, the limit") {
		t.Fatalf("Validate() = %v", err)
	}
}
