package bringup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// Marker is the durable record that a guarded vrouter start on this node was
// reverted. While it exists tfsite never labels the node for vrouter again;
// deleting the file is the operator's "try again".
type Marker struct {
	Version int       `json:"version"`
	Node    string    `json:"node"`
	Reason  string    `json:"reason"`
	Change  string    `json:"change,omitempty"` // netguard change id
	At      time.Time `json:"at"`
}

const markerVersion = 1

// ErrMarkerCorrupt is returned (wrapped) for a marker file that does not decode.
var ErrMarkerCorrupt = errors.New("vrouter marker unreadable")

// DecodeMarker decodes a marker strictly (unknown fields and trailing data
// are errors) and checks its version and required fields.
func DecodeMarker(data []byte) (Marker, error) {
	var m Marker
	if err := strictjson.Unmarshal(data, &m); err != nil {
		return Marker{}, fmt.Errorf("%w: %v", ErrMarkerCorrupt, err)
	}
	switch {
	case m.Version != markerVersion:
		return Marker{}, fmt.Errorf("%w: version %d, want %d", ErrMarkerCorrupt, m.Version, markerVersion)
	case strings.TrimSpace(m.Reason) == "":
		return Marker{}, fmt.Errorf("%w: reason missing", ErrMarkerCorrupt)
	case m.At.IsZero():
		return Marker{}, fmt.Errorf("%w: time missing", ErrMarkerCorrupt)
	}
	return m, nil
}

// Encode renders the marker as indented JSON.
func (m Marker) Encode() ([]byte, error) {
	m.Version = markerVersion
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding vrouter marker: %w", err)
	}
	return append(b, '\n'), nil
}

// readMarker returns the marker at path; ok is false when there is none. A
// corrupt marker is reported with ok true: it still keeps vrouter off.
func readMarker(path string) (m Marker, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Marker{}, false, nil
	}
	if err != nil {
		return Marker{}, true, fmt.Errorf("reading %s: %w", path, err)
	}
	m, err = DecodeMarker(b)
	if err != nil {
		return Marker{}, true, fmt.Errorf("%s: %w", path, err)
	}
	return m, true, nil
}

func writeMarker(path string, m Marker) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}
