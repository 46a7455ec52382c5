package kube

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

//go:embed support-matrix.yaml
var supportMatrixYAML []byte

// Release is one TF release's Kubernetes support.
type Release struct {
	Name         string   `json:"name"`
	Published    []string `json:"published"`
	TfsiteTested []string `json:"tfsiteTested"`
	Sources      []string `json:"sources"`
}

// HostMinimums are the default preflight thresholds with their sources.
type HostMinimums struct {
	MinMemoryGiB    uint64 `json:"minMemoryGiB"`
	MinMemorySource string `json:"minMemorySource"`
	MinDiskGB       uint64 `json:"minDiskGB"`
	MinDiskSource   string `json:"minDiskSource"`
	MinCPUs         int    `json:"minCPUs"`
	MinCPUsSource   string `json:"minCPUsSource"`
	MinKernel       string `json:"minKernel"`
	MinKernelSource string `json:"minKernelSource"`
}

// SupportMatrix is agent/kube/support-matrix.yaml.
type SupportMatrix struct {
	Releases []Release    `json:"releases"`
	Host     HostMinimums `json:"host"`
}

// ErrUnknownRelease is returned for a TF release the matrix does not list.
var ErrUnknownRelease = errors.New("TF release not in the support matrix")

// ParseSupportMatrix decodes a matrix strictly and checks every entry has sources.
func ParseSupportMatrix(data []byte) (SupportMatrix, error) {
	var m SupportMatrix
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return m, fmt.Errorf("decoding support matrix: %w", err)
	}
	var errs []error
	for _, r := range m.Releases {
		if r.Name == "" || len(r.Sources) == 0 {
			errs = append(errs, fmt.Errorf("support matrix: release %q needs a name and sources", r.Name))
		}
		for _, v := range append(slices.Clone(r.Published), r.TfsiteTested...) {
			if _, _, ok := parseMinor(v); !ok {
				errs = append(errs, fmt.Errorf("support matrix: release %s: %q is not a MAJOR.MINOR version", r.Name, v))
			}
		}
	}
	h := m.Host
	if h.MinMemoryGiB == 0 || h.MinDiskGB == 0 || h.MinCPUs == 0 || h.MinKernel == "" ||
		h.MinMemorySource == "" || h.MinDiskSource == "" || h.MinCPUsSource == "" || h.MinKernelSource == "" {
		errs = append(errs, errors.New("support matrix: host minimums and their sources must all be set"))
	}
	return m, errors.Join(errs...)
}

// DefaultSupportMatrix is the embedded matrix.
func DefaultSupportMatrix() SupportMatrix {
	m, err := ParseSupportMatrix(supportMatrixYAML)
	if err != nil {
		panic(err) // embedded data; TestEmbeddedMatrix keeps it valid
	}
	return m
}

// Release finds a release by name.
func (m SupportMatrix) Release(name string) (Release, error) {
	for _, r := range m.Releases {
		if r.Name == name {
			return r, nil
		}
	}
	names := make([]string, len(m.Releases))
	for i, r := range m.Releases {
		names[i] = r.Name
	}
	return Release{}, fmt.Errorf("%w: %q (known: %s)", ErrUnknownRelease, name, strings.Join(names, ", "))
}

// Support is how a release stands with one Kubernetes version.
type Support int

const (
	Unsupported  Support = iota
	TfsiteTested         // verified by tfsite, not published by TF
	Published            // published by TF
)

// Supports classifies a Kubernetes version ("v1.37.2", "1.21.4") for the release.
func (r Release) Supports(version string) Support {
	maj, min, ok := parseMinor(version)
	if !ok {
		return Unsupported
	}
	mm := fmt.Sprintf("%d.%d", maj, min)
	switch {
	case slices.Contains(r.Published, mm):
		return Published
	case slices.Contains(r.TfsiteTested, mm):
		return TfsiteTested
	}
	return Unsupported
}

// parseMinor reads "v1.37.2", "1.37", "Kubernetes v1.37.2" into (1, 37).
func parseMinor(v string) (int, int, bool) {
	v = strings.TrimSpace(v)
	if i := strings.LastIndexByte(v, ' '); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimPrefix(v, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err1 := strconv.Atoi(parts[0])
	min, err2 := strconv.Atoi(leadingDigits(parts[1]))
	if err1 != nil || err2 != nil || maj < 0 {
		return 0, 0, false
	}
	return maj, min, true
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
