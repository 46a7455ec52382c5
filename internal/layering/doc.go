// Package layering holds no code: its test checks, with `go list -deps`, the
// import rules docs/architecture.md states, so that they stay true.
package layering
