// Package sitename holds the rule for site names, shared by the allocator,
// the configuration, Kubernetes and TF objects and the BGP peer configs: a
// DNS label, so a site's name can name any of them. It imports nothing of
// tfsite (a leaf).
package sitename

import (
	"errors"
	"fmt"
)

// MaxLen is a DNS label's length limit.
const MaxLen = 63

// Validate checks that name is usable as a site name: 1–63 characters of
// a-z, 0-9 and '-', not starting or ending with '-'.
func Validate(name string) error {
	if name == "" {
		return errors.New("site name is empty: set a name like \"edge-1\"")
	}
	if len(name) > MaxLen {
		return fmt.Errorf("site name %q is longer than %d characters", name, MaxLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(name)-1
		if !ok {
			return fmt.Errorf("site name %q is not a DNS label: use lower-case a-z, 0-9 and inner '-'", name)
		}
	}
	return nil
}

// Valid reports whether Validate accepts name.
func Valid(name string) bool { return Validate(name) == nil }
