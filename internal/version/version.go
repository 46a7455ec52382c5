// Package version holds the build's version, set at link time by the Makefile:
//
//	-ldflags "-X github.com/tfsite/tfsite/internal/version.Version=v0.1.0"
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release tag, or "dev" for an unstamped build.
var Version = "dev"

// Commit is the VCS revision, filled from the build info when not stamped.
var Commit = ""

// String renders "tfsite VERSION (COMMIT, goX.Y)".
func String() string {
	c := Commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					c = s.Value[:12]
				}
			}
		}
	}
	if c == "" {
		c = "unknown commit"
	}
	return fmt.Sprintf("tfsite %s (%s, %s)", Version, c, runtime.Version())
}
