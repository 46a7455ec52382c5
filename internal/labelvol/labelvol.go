// Package labelvol reads files from a volume found by its filesystem label
// (a NoCloud seed labelled cidata, an OpenStack config drive labelled
// config-2): mounted read-only in a temporary directory, read with a size
// limit, unmounted.
package labelvol

import "errors"

// DefaultByLabelDir is where udev lists volumes by label.
const DefaultByLabelDir = "/dev/disk/by-label"

// ErrNoVolume means no volume carries any of the labels.
var ErrNoVolume = errors.New("no volume with that label")

// Volume names the labels to look for (the first present wins) and where.
type Volume struct {
	Labels []string
	// ByLabelDir defaults to DefaultByLabelDir.
	ByLabelDir string
	// FSTypes are tried in turn when mounting (default DefaultFSTypes).
	FSTypes []string
}

// DefaultFSTypes are what seed volumes and config drives are made with.
var DefaultFSTypes = []string{"iso9660", "vfat"}

// File is one file read from a volume.
type File struct {
	// Data is nil when the volume lacks the file.
	Data []byte
	// Device is the labelled device the volume was mounted from.
	Device string
}
