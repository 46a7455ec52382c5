package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/tfsite/tfsite/internal/labelvol"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// NoCloud finds a NoCloud seed and returns its user-data, and where it was
// found; nil user-data (and no error) means there is no seed.
type NoCloud interface {
	UserData(ctx context.Context) (data []byte, where string, err error)
}

// NoCloudDir reads user-data from a directory holding a seed's files (a
// mounted cidata volume, or a test's temp dir).
type NoCloudDir string

// UserData implements NoCloud.
func (d NoCloudDir) UserData(context.Context) ([]byte, string, error) {
	p := filepath.Join(string(d), "user-data")
	b, err := readInput(p, "NoCloud user-data", MaxUserData)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil && !errors.Is(err, ErrInvalid) {
		err = fmt.Errorf("reading %s: %w", p, err)
	}
	return b, p, err
}

// NoCloudLabel finds the seed volume by filesystem label (cidata or CIDATA,
// iso9660 or vfat) under /dev/disk/by-label, mounts it read-only in a temp
// directory, reads user-data and unmounts it.
type NoCloudLabel struct {
	// ByLabelDir defaults to /dev/disk/by-label.
	ByLabelDir string
}

// UserData implements NoCloud: no labelled volume means no seed.
func (n NoCloudLabel) UserData(context.Context) ([]byte, string, error) {
	files, err := labelvol.Volume{Labels: []string{"cidata", "CIDATA"}, ByLabelDir: n.ByLabelDir}.ReadFiles(MaxUserData, "user-data")
	switch {
	case errors.Is(err, labelvol.ErrNoVolume):
		return nil, "", nil
	case errors.Is(err, readlimit.ErrTooLarge):
		return nil, "", fmt.Errorf("%w: NoCloud %w (docs/config.md, Limits)", ErrInvalid, err)
	case err != nil:
		return nil, "", fmt.Errorf("reading the NoCloud seed: %w", err)
	}
	return files[0].Data, files[0].Device, nil
}

// ApplyUserData applies the `tfsite:` key of user-data (NoCloud or a cloud's) to c. The
// document is YAML, with or without a "#cloud-config" first line; other
// top-level keys belong to cloud-init and are ignored. A user-data script
// ("#!") is not ours and is ignored. It reports whether tfsite: was present.
func ApplyUserData(ud []byte, c *Config) (bool, error) {
	if bytes.HasPrefix(ud, []byte("#!")) || len(bytes.TrimSpace(ud)) == 0 {
		return false, nil
	}
	var top map[string]json.RawMessage
	if err := yaml.Unmarshal(ud, &top); err != nil {
		return false, fmt.Errorf("not a YAML mapping: %w", cleanYAMLError(err))
	}
	section, ok := top["tfsite"]
	if !ok || string(section) == "null" {
		return false, nil
	}
	// section is JSON, which is YAML: decode it strictly like a config file.
	if err := parseInto(section, c); err != nil {
		return false, fmt.Errorf("tfsite: %w", err)
	}
	return true, nil
}
