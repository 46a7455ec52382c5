// Package strictjson reads the JSON that tfsite writes itself (state files,
// API bodies): exactly one value, no field the target type lacks, and
// nothing after the value but white space.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailingData is returned when something follows the JSON value.
var ErrTrailingData = errors.New("data after the JSON value")

// Unmarshal decodes data into v strictly. Unlike a json.Decoder's More, the
// check for trailing data also refuses a stray ']' or '}'.
func Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailingData
	}
	return nil
}
