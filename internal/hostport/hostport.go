// Package hostport parses the "host", "host:port", "[v6]" and "[v6]:port"
// forms operators write for peers, so every layer accepts the same strings.
package hostport

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Normalize returns s as host:port; a missing port is defaultPort.
func Normalize(s string, defaultPort int) (string, error) {
	if s == "" {
		return "", errors.New("empty address; use host or host:port")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host or IPv6 address.
		host, port = strings.Trim(s, "[]"), strconv.Itoa(defaultPort)
	}
	if host == "" || strings.ContainsAny(host, " /\t,[]") {
		return "", fmt.Errorf("%q is not host[:port]; use e.g. 10.0.0.2 or 10.0.0.2:%d", s, defaultPort)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q has port %q out of range; use 1-65535", s, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}
