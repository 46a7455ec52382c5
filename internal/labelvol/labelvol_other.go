//go:build !linux

package labelvol

// Device finds nothing off Linux: volumes are listed by udev.
func (v Volume) Device() (string, error) { return "", ErrNoVolume }

// ReadFiles finds nothing off Linux.
func (v Volume) ReadFiles(int64, ...string) ([]File, error) { return nil, ErrNoVolume }
