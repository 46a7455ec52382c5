//go:build !linux

package underlay

func newHost(Options) (host, error) { return nil, ErrUnsupported }
