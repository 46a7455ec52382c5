package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// CmdlineParams are the tfsite.* parameters of a kernel command line, in order.
type CmdlineParams []CmdlineParam

// CmdlineParam is one tfsite.KEY=VALUE parameter.
type CmdlineParam struct {
	Key   string // without the "tfsite." prefix
	Value string
}

// cmdlineKeys documents every accepted tfsite.* key (see docs/config.md).
var cmdlineKeys = map[string]string{
	"config":    "path or data: URL of a YAML config document",
	"site":      "site name",
	"seeds":     "comma-separated seeds, host[:port]",
	"voters":    "comma-separated voter site names",
	"key":       "base64 gossip key",
	"keyfile":   "path of the gossip key file",
	"bind":      "gossip bind address[:port]",
	"advertise": "gossip advertise address[:port]",
	"mgmt":      "management interface",
	"underlay":  "underlay interface, auto, or off",
	"statedir":  "state directory",
	"metrics":   "metrics host:port, or off",
	"bringup":   "on or off: preflight, kubeadm init, TF and BGP peering",
	"insecure":  "on or off: lab mode (no gossip key is allowed; an exposed one is a warning, not an error)",
}

// ParseCmdline extracts the tfsite.* parameters of a kernel command line.
// Values may be double-quoted as the kernel allows (tfsite.x="a b"). Other
// parameters are ignored; an unknown tfsite.* key is an error.
func ParseCmdline(s string) (CmdlineParams, error) {
	var out CmdlineParams
	var errs []error
	for _, word := range splitCmdline(s) {
		key, value, _ := strings.Cut(word, "=")
		rest, ok := strings.CutPrefix(key, "tfsite.")
		if !ok {
			continue
		}
		if _, known := cmdlineKeys[rest]; !known {
			errs = append(errs, fmt.Errorf("unknown parameter %q; known: tfsite.{%s}", key, strings.Join(knownKeys(), ",")))
			continue
		}
		out = append(out, CmdlineParam{Key: rest, Value: strings.Trim(value, `"`)})
	}
	return out, errors.Join(errs...)
}

func knownKeys() []string { return slices.Sorted(maps.Keys(cmdlineKeys)) }

// splitCmdline splits on spaces outside double quotes, like the kernel.
func splitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	inQuote := false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			cur.WriteRune(r)
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}

// Apply sets c from the parameters: tfsite.config first (a whole document),
// then the single keys over it, so a key always beats the document.
func (p CmdlineParams) Apply(c *Config) error {
	var errs []error
	for _, kv := range p {
		if kv.Key != "config" {
			continue
		}
		doc, err := readConfigRef(kv.Value)
		if err == nil {
			err = parseInto(doc, c)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tfsite.config: %w", err))
		}
	}
	for _, kv := range p {
		if err := applyKey(c, kv.Key, kv.Value); err != nil {
			errs = append(errs, fmt.Errorf("tfsite.%s=%s: %w", kv.Key, kv.Value, err))
		}
	}
	return errors.Join(errs...)
}

func applyKey(c *Config, key, v string) error {
	switch key {
	case "config":
		// Applied as a whole document above.
	case "site":
		c.Site = v
	case "seeds":
		c.Gossip.Seeds = splitList(v)
	case "voters":
		c.Voters = splitList(v)
	case "key":
		c.Gossip.Key, c.Gossip.KeyFile = v, ""
	case "keyfile":
		c.Gossip.KeyFile, c.Gossip.Key = v, ""
	case "bind":
		host, port, err := splitHostOptionalPort(v)
		if err != nil {
			return err
		}
		c.Gossip.BindAddress = host
		if port != 0 {
			c.Gossip.BindPort = port
		}
	case "advertise":
		host, port, err := splitHostOptionalPort(v)
		if err != nil {
			return err
		}
		c.Gossip.AdvertiseAddress = host
		if port != 0 {
			c.Gossip.AdvertisePort = port
		}
	case "mgmt":
		c.ManagementInterface = v
	case "underlay":
		if v == "off" {
			c.Underlay.Disabled = true
		} else {
			c.Underlay.Interface, c.Underlay.Disabled = v, false
		}
	case "statedir":
		c.StateDir = v
	case "bringup":
		return onOff(v, &c.BringUp.Enabled)
	case "insecure":
		return onOff(v, &c.Insecure)
	case "metrics":
		if v == "off" {
			v = ""
		}
		c.MetricsAddress = v
	}
	return nil
}

// onOff sets *dst from "on" or "off".
func onOff(v string, dst *bool) error {
	switch v {
	case "on", "off":
		*dst = v == "on"
		return nil
	}
	return errors.New("want on or off")
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// splitHostOptionalPort parses "addr" or "addr:port" (IPv6 as [addr]:port).
func splitHostOptionalPort(v string) (string, int, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return strings.Trim(v, "[]"), 0, nil
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("port %q is out of range; use 1-65535", port)
	}
	return host, p, nil
}

// readConfigRef reads tfsite.config's value: an absolute path or a data: URL
// (data:;base64,<base64> or data:,<percent-encoded YAML>).
func readConfigRef(ref string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(ref, "data:"); ok {
		return DecodeDataURL(rest)
	}
	if !strings.HasPrefix(ref, "/") {
		return nil, fmt.Errorf("%q is neither an absolute path nor a data: URL", ref)
	}
	b, err := readlimit.File(ref, "config file", MaxConfigFile)
	if errors.Is(err, readlimit.ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	return b, nil
}

// DecodeDataURL decodes the part of a data: URL after "data:".
func DecodeDataURL(rest string) ([]byte, error) {
	meta, data, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, errors.New("data: URL has no ','; use data:;base64,<base64 YAML>")
	}
	if strings.HasSuffix(meta, ";base64") {
		data = strings.TrimRight(data, "=")
		b, err := base64.RawStdEncoding.DecodeString(data)
		if err != nil {
			b, err = base64.RawURLEncoding.DecodeString(data)
		}
		if err != nil {
			return nil, errors.New("data: URL is not valid base64; encode the YAML with base64 -w0")
		}
		return b, nil
	}
	b, err := url.PathUnescape(data)
	if err != nil {
		return nil, fmt.Errorf("data: URL is not valid percent-encoding: %w", err)
	}
	return []byte(b), nil
}
