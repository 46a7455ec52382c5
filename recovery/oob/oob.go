// Package oob keeps an optional management interface out of TF's hands:
// its address is routed through a table of its own, selected by a policy
// rule for that source address (or a VRF where the kernel has one), so a
// broken underlay (a wrong default route in the main table, vhost0 taking
// the NIC) does not cut the management path. It records the reservation so
// other parts of tfsite never pick that interface (Reserved).
package oob

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/tfsite/tfsite/internal/atomicfile"
	"github.com/tfsite/tfsite/internal/strictjson"
)

// DefaultStateDir holds reservation.json.
const DefaultStateDir = "/var/lib/tfsite/oob"

const stateFile = "reservation.json"

// Isolation modes.
const (
	ModeAuto = "auto" // VRF when the kernel has it, else policy rule
	ModeVRF  = "vrf"
	ModeRule = "rule"
)

// Config describes the management interface.
type Config struct {
	StateDir string
	Link     string       // e.g. "eth1"; never TF's PHYSICAL_INTERFACE
	Address  netip.Prefix // the management address, e.g. 192.168.100.10/24
	Gateway  netip.Addr   // optional: the management segment's router
	Table    uint32       // routing table of the management path
	Priority uint32       // priority of "from ADDRESS lookup TABLE"
	Mode     string
	VRFName  string
}

// Default returns table 200, rule priority 1000, mode auto, VRF "mgmt".
func Default() Config {
	return Config{StateDir: DefaultStateDir, Table: 200, Priority: 1000, Mode: ModeAuto, VRFName: "mgmt"}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("state dir is empty"))
	}
	if c.Link == "" || len(c.Link) > 15 || strings.ContainsAny(c.Link, "/ :") {
		errs = append(errs, fmt.Errorf("link %q: want an interface name (e.g. eth1)", c.Link))
	}
	if !c.Address.IsValid() || !c.Address.Addr().Is4() {
		errs = append(errs, fmt.Errorf("address %q: want an IPv4 address in CIDR form, e.g. 192.168.100.10/24", c.Address))
	}
	if c.Gateway.IsValid() && c.Address.IsValid() && !c.Address.Masked().Contains(c.Gateway) {
		errs = append(errs, fmt.Errorf("gateway %s is not on the management segment %s", c.Gateway, c.Address.Masked()))
	}
	if c.Table == 0 || c.Table == 253 || c.Table == 254 || c.Table == 255 {
		errs = append(errs, fmt.Errorf("table %d: want a table of its own (not 0, default, main or local)", c.Table))
	}
	if c.Priority == 0 || c.Priority >= 32766 {
		errs = append(errs, fmt.Errorf("rule priority %d: want 1..32765, before the main table's rule", c.Priority))
	}
	switch c.Mode {
	case ModeAuto, ModeVRF, ModeRule:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want auto, vrf or rule", c.Mode))
	}
	if c.Mode != ModeRule && (c.VRFName == "" || len(c.VRFName) > 15) {
		errs = append(errs, fmt.Errorf("vrf name %q: want 1..15 bytes", c.VRFName))
	}
	return errors.Join(errs...)
}

// Reservation is what was set up, recorded for the rest of tfsite.
type Reservation struct {
	Link     string       `json:"link"`
	Address  netip.Prefix `json:"address"`
	Gateway  netip.Addr   `json:"gateway,omitzero"`
	Table    uint32       `json:"table"`
	Priority uint32       `json:"priority"`
	Mode     string       `json:"mode"` // vrf or rule: what is in force
	VRF      string       `json:"vrf,omitempty"`
	Note     string       `json:"note,omitempty"` // why auto fell back
}

// Save records r atomically.
func Save(dir string, r *Reservation) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), append(data, '\n'), 0o644)
}

// Load returns the recorded reservation, nil when there is none.
func Load(dir string) (*Reservation, error) {
	r, _, err := atomicfile.Read(filepath.Join(dir, stateFile), "management reservation", "", Decode)
	return r, err
}

// Decode parses a reservation strictly.
func Decode(data []byte) (*Reservation, error) {
	var r Reservation
	if err := strictjson.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("corrupt management reservation: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	if r.Link == "" || !r.Address.IsValid() || (r.Mode != ModeVRF && r.Mode != ModeRule) {
		return nil, errors.New("corrupt management reservation: needs link, address and mode vrf or rule")
	}
	return &r, nil
}

// Reserved reports whether link is the management interface recorded in
// dir: the underlay and TF parts must never pick it (PHYSICAL_INTERFACE,
// vhost0, DHCP baseline).
func Reserved(dir, link string) (bool, error) {
	r, err := Load(dir)
	if err != nil || r == nil {
		return false, err
	}
	return r.Link == link || (r.VRF != "" && r.VRF == link), nil
}
