package bringup

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// linkExists reports whether the calling thread's network namespace has a
// link of that name.
func linkExists(name string) (bool, error) {
	_, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &nf):
		return false, nil
	}
	return false, err
}
