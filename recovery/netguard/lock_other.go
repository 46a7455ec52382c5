//go:build !unix

package netguard

import (
	"errors"
	"os"
)

// The guard itself runs on Linux only; elsewhere the package builds for the
// client commands that share its types, and taking the lock fails.
func tryLock(*os.File) error { return errors.New("the network guard's lock needs a Unix system") }

func unlock(*os.File) error { return nil }
