package detach

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// unitStartTimeout bounds talking to systemd: connecting, and the start job.
const unitStartTimeout = 10 * time.Second

// Start starts spec's process outside the caller's session: as a transient
// systemd unit when systemd can run it in this process's network namespace,
// else as a setsid child. A failing systemd start is logged and the setsid
// child started instead, so a broken D-Bus never leaves a change unguarded.
func Start(ctx context.Context, spec Spec, log *slog.Logger) (Started, error) {
	if err := spec.Validate(); err != nil {
		return Started{}, fmt.Errorf("detach: %w", err)
	}
	if why := systemdUnusable(); why != "" {
		log.Debug("starting a detached process", "why not systemd", why)
	} else if st, err := startUnit(ctx, spec); err == nil {
		return st, nil
	} else {
		log.Warn("starting a transient systemd unit failed; starting a detached process instead", "unit", spec.Unit, "err", err)
	}
	return startSetsid(spec)
}

// systemdUnusable says why a transient unit would not do ("" when it would):
// systemd must be PID 1 (sd_booted: /run/systemd/system), and this process
// must share PID 1's network namespace, since a unit runs in PID 1's and a
// guard must watch the namespace its change was made in.
func systemdUnusable() string {
	if fi, err := os.Lstat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return "systemd is not PID 1"
	}
	same, err := sameFile("/proc/thread-self/ns/net", "/proc/1/ns/net")
	switch {
	case err != nil:
		return "comparing network namespaces with PID 1's: " + err.Error()
	case !same:
		return "this process runs in a network namespace other than PID 1's"
	}
	return ""
}

// sameFile reports whether a and b are the same file (namespace files are
// the same namespace).
func sameFile(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// unitProperties describes the transient service: ExecStart runs Argv, in
// system.slice (not the SSH session's scope), collected once it ends even
// when it failed, so its name never lingers. ExecStart's bool is systemd's
// ignore-failure ("-" prefix; go-systemd calls it uncleanIsFailure): how the
// process ended is the caller's business, not a failed unit on the console.
func unitProperties(spec Spec) []sddbus.Property {
	return []sddbus.Property{
		sddbus.PropDescription(spec.Description),
		sddbus.PropExecStart(spec.Argv, true),
		sddbus.PropType("exec"),
		sddbus.PropSlice("system.slice"),
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
	}
}

func startUnit(ctx context.Context, spec Spec) (Started, error) {
	ctx, cancel := context.WithTimeout(ctx, unitStartTimeout)
	defer cancel()
	// systemd's private socket: no dbus-daemon needed, root only.
	conn, err := sddbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		return Started{}, fmt.Errorf("connecting to systemd: %w", err)
	}
	defer conn.Close()
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, spec.Unit, "fail", unitProperties(spec), done); err != nil {
		return Started{}, fmt.Errorf("starting transient unit %s: %w", spec.Unit, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return Started{}, fmt.Errorf("starting transient unit %s: job %s (journalctl -u %s)", spec.Unit, res, spec.Unit)
		}
	case <-ctx.Done():
		return Started{}, fmt.Errorf("starting transient unit %s: %w", spec.Unit, ctx.Err())
	}
	return Started{Unit: spec.Unit, Log: "journalctl -u " + spec.Unit}, nil
}

func startSetsid(spec Spec) (Started, error) {
	if fi, err := os.Stat(spec.LogFile); err == nil && fi.Size() > MaxLogBytes {
		_ = os.Truncate(spec.LogFile, 0)
	}
	logf, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return Started{}, fmt.Errorf("detach: opening log file: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, "/" // Stdin nil: /dev/null
	// A new session: no controlling terminal, so no SIGHUP when the
	// caller's terminal hangs up, and a process group of its own, so
	// killing the caller's group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Started{}, fmt.Errorf("detach: starting %s: %w", spec.Argv[0], err)
	}
	// Reap it if it ends while the caller still runs; otherwise init does.
	go func() { _ = cmd.Wait() }()
	return Started{PID: cmd.Process.Pid, Log: spec.LogFile}, nil
}
