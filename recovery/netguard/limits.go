package netguard

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tfsite/tfsite/internal/readlimit"
)

// Size limits of what ends up in netguard's records (docs/network-plan.md):
// a plan is kept in pending.json, its description in pending.json and in
// every journal event of the change, a reason in its journal event.
const (
	// MaxPlanFile bounds a plan file (and a plan DecodePlan decodes).
	MaxPlanFile = 1 << 20
	// MaxDescription bounds a plan's description, in bytes.
	MaxDescription = 256
	// MaxReason bounds the reason a journal event keeps, in bytes; a longer
	// one (a restore that failed at many steps) is cut, saying so.
	MaxReason = 2 << 10
)

// ReadPlanFile reads and decodes the plan file at path; a file over
// MaxPlanFile is refused having read no more than that.
func ReadPlanFile(path string) (*Plan, error) {
	data, err := readlimit.File(path, "plan file", MaxPlanFile)
	if errors.Is(err, readlimit.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w (docs/network-plan.md)", ErrInvalidPlan, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading plan: %w", err)
	}
	p, err := DecodePlan(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// checkDescription bounds the description and keeps it one line of text,
// as show and the journal print it.
func checkDescription(d string) []error {
	switch {
	case len(d) > MaxDescription:
		return []error{fmt.Errorf("description is %d bytes: at most %d (it is kept in the journal)", len(d), MaxDescription)}
	case strings.IndexFunc(d, unicode.IsControl) >= 0 || !utf8.ValidString(d):
		return []error{errors.New("description holds a control character or invalid UTF-8: one line of text")}
	}
	return nil
}

// clampText cuts s to at most n bytes (n well above 32) on a rune
// boundary, saying how much was cut.
func clampText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	keep := n - 32
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return fmt.Sprintf("%s… [%d bytes cut]", s[:keep], len(s)-keep)
}
