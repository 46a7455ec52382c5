//go:build !linux

package kube

import "errors"

func diskFree(string) (uint64, error) {
	return 0, errors.New("disk check is implemented for Linux only")
}
