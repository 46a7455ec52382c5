// Package lab builds the network labs that tfsite's tests (internal/testrig), the demo (hack/demo.sh)
// and the benchmarks (hack/bench-discover.sh) run in: named network namespaces joined by veth pairs
// and bridges, with real dnsmasq DHCP servers. One definition, so a benchmark measures the lab the
// tests check. Everything here shells out to iproute2 (ip netns, ip link) like an operator would.
package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// run runs argv and returns stdout; the error carries stderr's first line.
func run(argv ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// CreateNetns creates the named network namespace with its loopback up.
func CreateNetns(name string) error {
	if _, err := run("ip", "netns", "add", name); err != nil {
		return fmt.Errorf("creating network namespace: %w", err)
	}
	if _, err := run("ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		DeleteNetns(name)
		return fmt.Errorf("bringing up lo in %s: %w", name, err)
	}
	return nil
}

// DeleteNetns kills every process in the namespace (but this one: a thread
// of the caller may sit in it), waits briefly for them, then deletes it.
func DeleteNetns(name string) {
	self := strconv.Itoa(os.Getpid())
	for try := 0; try < 20; try++ {
		out, err := exec.Command("ip", "netns", "pids", name).Output()
		if err != nil {
			break
		}
		var left []string
		for _, pid := range strings.Fields(string(out)) {
			if pid != self {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			break
		}
		_ = exec.Command("kill", append([]string{"-9"}, left...)...).Run()
		time.Sleep(10 * time.Millisecond)
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
}

// Command returns an exec.Cmd that runs argv inside the namespace.
func Command(ns string, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
}

// Veth joins namespace a (interface aName) to namespace b (interface bName),
// both ends up. tmp (at most 13 bytes, unique on the host) names the ends
// while they pass through the caller's namespace; names must fit 15 bytes.
func Veth(tmp, a, aName, b, bName string) error {
	ta, tb := tmp+"a", tmp+"b"
	steps := [][]string{
		{"ip", "link", "add", ta, "type", "veth", "peer", "name", tb},
		{"ip", "link", "set", ta, "netns", a},
		{"ip", "link", "set", tb, "netns", b},
		{"ip", "-n", a, "link", "set", ta, "name", aName},
		{"ip", "-n", b, "link", "set", tb, "name", bName},
		{"ip", "-n", a, "link", "set", aName, "up"},
		{"ip", "-n", b, "link", "set", bName, "up"},
	}
	for _, s := range steps {
		if _, err := run(s...); err != nil {
			_ = exec.Command("ip", "link", "del", ta).Run()
			return fmt.Errorf("joining %s/%s to %s/%s: %w", a, aName, b, bName, err)
		}
	}
	return nil
}

// Bridge creates bridge name in ns, up, with ports (interfaces already in ns) enslaved.
func Bridge(ns, name string, ports ...string) error {
	steps := [][]string{
		{"ip", "-n", ns, "link", "add", name, "type", "bridge"},
		{"ip", "-n", ns, "link", "set", name, "up"},
	}
	for _, p := range ports {
		steps = append(steps, []string{"ip", "-n", ns, "link", "set", p, "master", name})
	}
	for _, s := range steps {
		if _, err := run(s...); err != nil {
			return fmt.Errorf("bridge %s in %s: %w", name, ns, err)
		}
	}
	return nil
}

// Addr adds an address (CIDR) to dev in ns.
func Addr(ns, dev, cidr string) error {
	if _, err := run("ip", "-n", ns, "addr", "add", cidr, "dev", dev); err != nil {
		return fmt.Errorf("adding %s to %s in %s: %w", cidr, dev, ns, err)
	}
	return nil
}
