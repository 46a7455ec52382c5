package detach

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/tfsite/tfsite/internal/testrig"
)

// procStat returns the session id and controlling terminal of pid
// (fields 6 and 7 of /proc/PID/stat).
func procStat(t *testing.T, pid int) (sid, tty int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if _, err := fmt.Sscan(f[3]+" "+f[4], &sid, &tty); err != nil {
		t.Fatal(err)
	}
	return sid, tty
}

func TestSetsidChildHasASessionOfItsOwn(t *testing.T) {
	log := filepath.Join(t.TempDir(), "guard.log")
	st, err := startSetsid(Spec{Argv: []string{"/bin/sh", "-c", "echo started; exec sleep 30"}, Unit: "x.service", LogFile: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(st.PID, syscall.SIGKILL) })
	if sid, tty := procStat(t, st.PID); sid != st.PID || tty != 0 {
		t.Fatalf("child %d: session %d, controlling tty %d; want a session of its own and no terminal", st.PID, sid, tty)
	}
	if mySid, _ := procStat(t, os.Getpid()); mySid == st.PID {
		t.Fatal("child shares the caller's session")
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "started") {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the child's output never reached the log file")
		}
	}
	if err := os.WriteFile(log, make([]byte, MaxLogBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	st2, err := startSetsid(Spec{Argv: []string{"/bin/true"}, Unit: "x.service", LogFile: log})
	if err != nil {
		t.Fatal(err)
	}
	_ = st2
	if fi, _ := os.Stat(log); fi.Size() > MaxLogBytes {
		t.Fatalf("log of %d bytes not truncated at start", fi.Size())
	}
}

func TestNamespaceComparison(t *testing.T) {
	testrig.RequireRoot(t)
	// This thread's namespace, kept open (fds are process-wide) to compare
	// with from a thread inside another namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	outside := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if same, err := sameFile("/proc/thread-self/ns/net", outside); err != nil || !same {
		t.Fatalf("this thread against its own namespace: same %v, %v", same, err)
	}
	ns := testrig.NewNetns(t, "det")
	var inNs, asOutside bool
	if err := ns.Do(func() (err error) {
		if inNs, err = sameFile("/proc/thread-self/ns/net", "/run/netns/"+ns.Name); err != nil {
			return err
		}
		asOutside, err = sameFile("/proc/thread-self/ns/net", outside)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !inNs || asOutside {
		t.Fatalf("a thread inside netns %s: same as it %v, same as outside %v; a unit would guard the wrong namespace", ns.Name, inNs, asOutside)
	}
}

func TestUnitProperties(t *testing.T) {
	spec := Spec{Argv: []string{"/usr/bin/tfsite", "net", "guard", "--request", "ID"}, Unit: "tfsite-net-guard-ID.service", Description: "tfsite: guarded network change ID"}
	got := map[string]dbus.Variant{}
	for _, p := range unitProperties(spec) {
		got[p.Name] = p.Value
	}
	for name, want := range map[string]string{
		"Description": `"tfsite: guarded network change ID"`,
		"Type":        `"exec"`,
		"Slice":       `"system.slice"`,
		"CollectMode": `"inactive-or-failed"`,
		"ExecStart":   `[("/usr/bin/tfsite", ["/usr/bin/tfsite", "net", "guard", "--request", "ID"], true,)]`,
	} {
		if v, ok := got[name]; !ok || v.String() != want {
			t.Errorf("%s = %v, want %s", name, v, want)
		}
	}
	// systemd takes ExecStart of a transient service as a(sasb): path, argv, ignore-failure.
	if sig := got["ExecStart"].Signature().String(); sig != "a(sasb)" {
		t.Errorf("ExecStart has D-Bus signature %s, systemd's StartTransientUnit wants a(sasb)", sig)
	}
}
