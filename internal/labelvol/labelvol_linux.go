package labelvol

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// Device returns the first labelled device present, or ErrNoVolume.
func (v Volume) Device() (string, error) {
	dir := v.ByLabelDir
	if dir == "" {
		dir = DefaultByLabelDir
	}
	for _, label := range v.Labels {
		p := filepath.Join(dir, label)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoVolume
}

// ReadFiles mounts the volume read-only (iso9660 or vfat) and reads each
// relative path, at most limit bytes each; a missing file gives nil Data.
func (v Volume) ReadFiles(limit int64, paths ...string) ([]File, error) {
	dev, err := v.Device()
	if err != nil {
		return nil, err
	}
	mnt, err := os.MkdirTemp("", "tfsite-volume-")
	if err != nil {
		return nil, fmt.Errorf("creating mount point: %w", err)
	}
	defer os.Remove(mnt)
	types := v.FSTypes
	if len(types) == 0 {
		types = DefaultFSTypes
	}
	// The agent, bring-up and the console read the same seed, each mounting it for a moment; a mount
	// racing another one's mount or unmount of the device fails with EBUSY, so that is retried.
	// Any type may be the one that meets the busy device, so a busy try of any type is retried.
	var mountErr error
	for try := 0; try < 30; try++ {
		busy := false
		for _, fstype := range types {
			if mountErr = unix.Mount(dev, mnt, fstype, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); mountErr == nil {
				break
			}
			busy = busy || errors.Is(mountErr, unix.EBUSY)
		}
		if mountErr == nil || !busy {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if mountErr != nil {
		return nil, fmt.Errorf("mounting %s read-only (%s): %w", dev, strings.Join(types, " or "), mountErr)
	}
	defer unix.Unmount(mnt, 0)
	out := make([]File, len(paths))
	for i, p := range paths {
		out[i].Device = dev
		f, err := os.Open(filepath.Join(mnt, p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			out[i].Data, err = readlimit.All(f, p+" on "+dev, limit)
			f.Close()
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
