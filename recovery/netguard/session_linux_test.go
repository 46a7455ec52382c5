package netguard

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tfsite/tfsite/internal/testrig"
)

// sessionTry is `tfsite net try` started as an SSH session would run it:
// in a session of its own whose controlling terminal is a pseudo-terminal.
type sessionTry struct {
	cmd  *exec.Cmd
	ptmx *os.File
	out  testrig.Buffer
	done chan struct{}
	err  error
}

func startSessionTry(t *testing.T, c cli, args ...string) *sessionTry {
	t.Helper()
	s := &sessionTry{cmd: c.command(append([]string{"try"}, args...)...), done: make(chan struct{})}
	pt, err := pty.Start(s.cmd) // Setsid + Setctty: the pty is its controlling terminal
	if err != nil {
		t.Fatal(err)
	}
	// pty.Start leaves the master in blocking mode, where a Read in flight
	// keeps it open after Close and the hang-up would only come with the
	// next output. A non-blocking copy is closed at once, Read or not.
	fd, err := syscall.Dup(int(pt.Fd()))
	pt.Close()
	if err == nil {
		err = syscall.SetNonblock(fd, true)
	}
	if err != nil {
		t.Fatal(err)
	}
	ptmx := os.NewFile(uintptr(fd), "/dev/ptmx")
	s.ptmx = ptmx
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			_, _ = s.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		_ = ptmx.Close()
	})
	return s
}

func (s *sessionTry) output() string { return s.out.String() }

// waitApplied waits until the journal's last event is an applied change.
func waitApplied(t *testing.T, st Store, what func() string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ev, _ := st.Events(); len(ev) > 0 && ev[len(ev)-1].Event == EventApplied {
			return
		}
	}
	t.Fatalf("try never applied its plan: %s", what())
}

// regainedAfter waits until the operator reaches the host again, at the
// latest 5 s after change p's deadline, and logs how long that took after
// since (what happened then).
func (l *lab) regainedAfter(t *testing.T, p *Pending, since time.Time, what string) (time.Duration, time.Time) {
	t.Helper()
	regained, err := l.waitRegained(time.Until(p.Deadline) + 5*time.Second)
	if err != nil {
		t.Fatalf("after %s nothing reverted the change (deadline %s): %v", what, p.Deadline.Sub(p.Started), err)
	}
	t.Logf("reachable again %.2f s after %s (deadline %.2f s after it)", regained.Sub(since).Seconds(), what, p.Deadline.Sub(since).Seconds())
	return regained.Sub(since), regained
}

// waitEnded waits (the host may answer a moment before the journal is
// written) for the journal to say how change id ended.
func waitEnded(t *testing.T, st Store, id string) Event {
	t.Helper()
	var last Event
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		ev, err := st.Events()
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) > 0 {
			if last = ev[len(ev)-1]; last.ID == id && last.Event != EventApplied {
				return last
			}
		}
	}
	t.Fatalf("the journal does not say how change %s ended; last event %+v", id, last)
	return last
}

// TestHangUpMidWindowReverts cuts the operator's session in the middle of
// the window of a change that locked the operator out, as a dropped SSH
// connection does: the terminal hangs up (SIGHUP to the session), or the
// whole session is killed. Nothing else is run: the host must come back by
// itself within the deadline plus a few seconds.
func TestHangUpMidWindowReverts(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	timeout := 4 * time.Second
	bench := os.Getenv("NETGUARD_HANGUP_BENCH_OUT")
	if bench != "" {
		timeout = Default().Timeout // the benchmark measures the defaults
	}
	for _, tc := range []struct {
		name   string
		hangUp func(s *sessionTry) error
		// exitCode is what the foreground reports when it outlives the
		// hang-up (-1: killed with its session).
		exitCode int
	}{
		{"pty hang-up", func(s *sessionTry) error { return s.ptmx.Close() }, 3},
		{"session killed", func(s *sessionTry) error { return syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			c := newCLI(t, l.host)
			before := snapshotIn(t, l.host)
			st := Store{Dir: c.state}
			s := startSessionTry(t, c, "--plan", takeoverPlanFile(t), "--timeout", timeout.String())
			waitApplied(t, st, s.output)
			l.waitLockedOut(t, 3*time.Second)
			p, err := st.Pending()
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.hangUp(s); err != nil {
				t.Fatal(err)
			}
			took, _ := l.regainedAfter(t, p, time.Now(), "the session's "+tc.name+" (try printed "+strconv.Quote(s.output())+")")
			if bench != "" && tc.name == "pty hang-up" {
				appendBench(t, bench, took)
			}
			if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
				t.Fatalf("the revert is not exact:\n%s", strings.Join(d, "\n"))
			}
			if last := waitEnded(t, st, p.ID); last.Event != EventReverted || !strings.Contains(last.Reason, "not healthy within") {
				t.Fatalf("journal's last event %+v, want change %s reverted for not being healthy", last, p.ID)
			}
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				t.Fatal("tfsite net try still runs 5 s after the revert")
			}
			var ee *exec.ExitError
			if !errors.As(s.err, &ee) || ee.ExitCode() != tc.exitCode {
				t.Fatalf("try ended with %v, want exit code %d", s.err, tc.exitCode)
			}
		})
	}
}

// TestGuardKilledWatcherReverts kills the process guarding a window with
// SIGKILL (and its foreground too), then runs nothing but the agent's
// watcher: the host must be reachable again within the deadline plus a few
// seconds, and the journal must say who reverted it.
func TestGuardKilledWatcherReverts(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	l := newLab(t)
	c := newCLI(t, l.host)
	before := snapshotIn(t, l.host)
	st := Store{Dir: c.state}
	timeout := "4s"
	bench := os.Getenv("NETGUARD_KILL_BENCH_OUT")
	if bench != "" {
		timeout = Default().Timeout.String() // the benchmark measures the defaults
	}
	try, _ := startTakeover(t, l, c, timeout)
	if err := try.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = try.Wait()
	p := killGuard(t, st)
	if p.PID == try.Process.Pid {
		t.Fatalf("change %s was guarded by the foreground process itself (pid %d)", p.ID, p.PID)
	}

	cfg := Default()
	cfg.StateDir = c.state
	w, err := NewWatcher(WatchConfig{Guard: cfg, Actor: "tfsite-agent", Interval: time.Second}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		// On one thread inside the host's namespace, as the agent runs in the host's.
		watched <- l.host.Do(func() error {
			for {
				w.Check()
				select {
				case <-stop:
					return nil
				case <-time.After(time.Second):
				}
			}
		})
	}()
	defer func() { close(stop); <-watched }()
	_, regained := l.regainedAfter(t, p, time.Now(), "kill -9 of the guard, with the watcher running")
	if bench != "" {
		appendBench(t, bench, regained.Sub(p.Deadline))
	}
	if regained.Before(p.Deadline) {
		t.Fatalf("reverted %s before the deadline: an operator could still have confirmed it", p.Deadline.Sub(regained))
	}
	if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
		t.Fatalf("the revert is not exact:\n%s", strings.Join(d, "\n"))
	}
	want := "reverted by tfsite-agent: the guarding process (pid " + strconv.Itoa(p.PID) + ") ended before confirming"
	if last := waitEnded(t, st, p.ID); last.Event != EventReverted || last.Reason != want {
		t.Fatalf("journal's last event %+v, want change %s reverted with %q", last, p.ID, want)
	}
	if _, err := st.Pending(); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("pending record after the watcher's revert: %v", err)
	}
}
