package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/readlimit"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// BringUpStatusFile is where the bring-up process reports, relative to the
// agent's state dir; the agent serves its content as Status.BringUp.
const BringUpStatusFile = "bringup/status.json"

// maxBringUpFile bounds the report the agent reads.
const maxBringUpFile = 1 << 20

// WriteBringUp stores a bring-up report atomically under stateDir.
func WriteBringUp(stateDir string, b *BringUp) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding bring-up status: %w", err)
	}
	path := filepath.Join(stateDir, BringUpStatusFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing bring-up status: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing bring-up status: %w", err)
	}
	return nil
}

// ReadBringUp reads the report under stateDir; (nil, nil) when there is none.
func ReadBringUp(stateDir string) (*BringUp, error) {
	path := filepath.Join(stateDir, BringUpStatusFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading bring-up status: %w", err)
	}
	defer f.Close()
	b, err := DecodeBringUp(readlimit.Reader(f, "the file", maxBringUpFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// DecodeBringUp decodes a bring-up report strictly (unknown fields are
// errors) and requires a phase.
func DecodeBringUp(r io.Reader) (*BringUp, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decoding bring-up status: %w (delete the file; tfsite bringup rewrites it)", err)
	}
	var b BringUp
	if err := strictjson.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("decoding bring-up status: %w (delete the file; tfsite bringup rewrites it)", err)
	}
	if b.Phase == "" {
		return nil, errors.New("decoding bring-up status: no phase (delete the file; tfsite bringup rewrites it)")
	}
	return &b, nil
}
