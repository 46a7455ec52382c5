package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// UserData implements NoCloud: no labelled volume means no seed.
func (n NoCloudLabel) UserData(context.Context) ([]byte, string, error) {
	dir := n.ByLabelDir
	if dir == "" {
		dir = "/dev/disk/by-label"
	}
	var dev string
	for _, label := range []string{"cidata", "CIDATA"} {
		p := filepath.Join(dir, label)
		if _, err := os.Stat(p); err == nil {
			dev = p
			break
		}
	}
	if dev == "" {
		return nil, "", nil
	}
	mnt, err := os.MkdirTemp("", "tfsite-cidata-")
	if err != nil {
		return nil, "", fmt.Errorf("creating mount point: %w", err)
	}
	defer os.Remove(mnt)
	var mountErr error
	for _, fstype := range []string{"iso9660", "vfat"} {
		if mountErr = unix.Mount(dev, mnt, fstype, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); mountErr == nil {
			break
		}
	}
	if mountErr != nil {
		return nil, "", fmt.Errorf("mounting seed %s read-only (iso9660 or vfat): %w", dev, mountErr)
	}
	defer unix.Unmount(mnt, 0)
	f, err := os.Open(filepath.Join(mnt, "user-data"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	var b []byte
	if err == nil {
		b, err = readlimit.All(f, "NoCloud user-data on "+dev, MaxUserData)
		f.Close()
	}
	if errors.Is(err, readlimit.ErrTooLarge) {
		return nil, dev, fmt.Errorf("%w: %w (docs/config.md, Limits)", ErrInvalid, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading user-data on %s: %w", dev, err)
	}
	return b, dev, nil
}
