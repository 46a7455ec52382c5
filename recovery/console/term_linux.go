package console

import (
	"os"

	"golang.org/x/sys/unix"
)

// setEcho turns terminal echo on or off; it does nothing on a non-terminal.
func setEcho(f *os.File, on bool) {
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return
	}
	if on {
		t.Lflag |= unix.ECHO
	} else {
		t.Lflag &^= unix.ECHO
	}
	_ = unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
}
