//go:build !linux

package config

import "context"

// UserData implements NoCloud: seed volumes are found through Linux's
// /dev/disk/by-label, so elsewhere (an operator's laptop running the client
// commands) there is no seed.
func (n NoCloudLabel) UserData(context.Context) ([]byte, string, error) { return nil, "", nil }
