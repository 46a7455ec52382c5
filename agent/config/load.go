package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// Sources says where Load reads configuration from, lowest precedence first:
// defaults < the platform's facts (site name, advertised address) < File <
// NoCloud user-data < the platform's user-data < kernel command line. Empty
// fields are skipped. Flags of `tfsite agent` are applied by the caller,
// above all.
type Sources struct {
	// File is the config file (default /etc/tfsite/config.yaml). A missing
	// file is not an error unless FileRequired.
	File         string
	FileRequired bool
	// Cmdline is the path of the kernel command line (/proc/cmdline).
	Cmdline string
	// NoCloud finds a NoCloud seed's user-data; nil skips it.
	NoCloud NoCloud
	// Platform reads the cloud's user-data and facts (agent/platform, set
	// at the wiring point); nil skips it.
	Platform Platform
}

// DefaultSources are the appliance's sources.
func DefaultSources() Sources {
	return Sources{File: DefaultFile, Cmdline: "/proc/cmdline", NoCloud: NoCloudLabel{}}
}

// Loaded is a configuration together with where it came from.
type Loaded struct {
	Config Config
	// Applied lists the sources that set something, in the order applied.
	Applied []string
}

// ErrInvalid wraps every error that comes from bad configuration input (as
// opposed to I/O failures); callers exit with the "bad config" code on it.
var ErrInvalid = errors.New("invalid configuration")

// Load layers every source over Default(). It does not Validate: a config
// without a site name is legal (the agent waits for configuration).
func Load(ctx context.Context, src Sources) (Loaded, error) {
	l := Loaded{Config: Default()}
	var pd *PlatformData
	if src.Platform != nil {
		var err error
		if pd, err = src.Platform.Read(ctx); err != nil {
			return l, err
		}
		if pd != nil && applyFacts(pd, &l.Config) {
			l.Applied = append(l.Applied, "platform "+pd.Name+" facts")
		}
	}
	if src.File != "" {
		b, err := readInput(src.File, "config file", MaxConfigFile)
		switch {
		case errors.Is(err, ErrInvalid):
			return l, err
		case err == nil:
			if err := parseInto(b, &l.Config); err != nil {
				return l, fmt.Errorf("%w: config file %s: %w", ErrInvalid, src.File, err)
			}
			l.Applied = append(l.Applied, "file "+src.File)
		case errors.Is(err, fs.ErrNotExist) && !src.FileRequired:
		default:
			return l, fmt.Errorf("reading config file: %w", err)
		}
	}
	if src.NoCloud != nil {
		ud, where, err := src.NoCloud.UserData(ctx)
		if err == nil && len(ud) > MaxUserData {
			err = fmt.Errorf("%w: NoCloud user-data %s is larger than %s, the limit (docs/config.md, Limits)", ErrInvalid, where, readlimit.Size(MaxUserData))
		}
		if errors.Is(err, ErrInvalid) {
			return l, err
		}
		if err != nil {
			return l, fmt.Errorf("reading NoCloud seed: %w", err)
		}
		if ud != nil {
			applied, err := ApplyUserData(ud, &l.Config)
			if err != nil {
				return l, fmt.Errorf("%w: NoCloud user-data %s: %w", ErrInvalid, where, err)
			}
			if applied {
				l.Applied = append(l.Applied, "nocloud "+where)
			}
		}
	}
	if pd != nil && pd.UserData != nil {
		applied, err := ApplyUserData(pd.UserData, &l.Config)
		if err != nil {
			return l, fmt.Errorf("%w: %s user-data %s: %w", ErrInvalid, pd.Name, pd.Where, err)
		}
		if applied {
			l.Applied = append(l.Applied, "platform "+pd.Name+" user-data "+pd.Where)
		}
	}
	if src.Cmdline != "" {
		b, err := readInput(src.Cmdline, "kernel command line", MaxCmdline)
		if errors.Is(err, ErrInvalid) {
			return l, err
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return l, fmt.Errorf("reading kernel command line: %w", err)
		}
		params, err := ParseCmdline(string(b))
		if err != nil {
			return l, fmt.Errorf("%w: kernel command line: %w", ErrInvalid, err)
		}
		if len(params) > 0 {
			if err := params.Apply(&l.Config); err != nil {
				return l, fmt.Errorf("%w: kernel command line: %w", ErrInvalid, err)
			}
			l.Applied = append(l.Applied, "cmdline "+src.Cmdline)
		}
	}
	return l, nil
}

// Parse decodes one YAML config document over Default(), strictly: unknown
// fields are errors naming the field.
func Parse(b []byte) (Config, error) {
	c := Default()
	err := parseInto(b, &c)
	return c, err
}

// parseInto decodes YAML over c: fields present in b replace c's, others stay.
func parseInto(b []byte, c *Config) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	// Decode into a copy so a failed document leaves c untouched; the lists
	// the document names start empty (dropLists), so they are replaced as a
	// whole and never written into the backing arrays tmp shares with c.
	tmp := *c
	var doc map[string]any
	if yaml.Unmarshal(b, &doc) == nil {
		dropLists(doc, reflect.ValueOf(&tmp).Elem())
	}
	if err := yaml.UnmarshalStrict(b, &tmp); err != nil {
		return cleanYAMLError(err)
	}
	*c = tmp
	return nil
}

// dropLists sets to nil every list field of the struct v that doc (the same
// document, decoded generically) names, recursing into the objects it names.
// encoding/json decodes an array into a slice's existing elements, so a list
// of objects from a higher source would otherwise be merged item by item into
// the lower source's items: a pin for site b in the NoCloud seed would keep the
// ASN and pod of the file's first pin. Keys match case-insensitively, as
// encoding/json matches fields.
func dropLists(doc map[string]any, v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		for k, val := range doc {
			if !strings.EqualFold(k, name) {
				continue
			}
			switch f := v.Field(i); f.Kind() {
			case reflect.Slice:
				f.SetZero()
			case reflect.Struct:
				if m, ok := val.(map[string]any); ok {
					dropLists(m, f)
				}
			}
		}
	}
}

// cleanYAMLError strips the library's layering prefixes so the message reads
// `unknown field "sitename"` rather than three nested wrappers.
func cleanYAMLError(err error) error {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "error converting YAML to JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	if strings.HasPrefix(msg, "unknown field ") {
		msg += "; see docs/config.md for the fields"
	}
	return errors.New(msg)
}
