//go:build !linux

package bringup

import "errors"

func linkExists(string) (bool, error) {
	return false, errors.New("vrouter runs on Linux only")
}
