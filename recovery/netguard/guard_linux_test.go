package netguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func labGuard(t testing.TB, timeout time.Duration) *Guard {
	t.Helper()
	cfg := Default()
	cfg.StateDir, cfg.Timeout = t.TempDir(), timeout
	if timeout < 2*cfg.Settle {
		cfg.Settle = timeout / 3
	}
	g, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func snapshotIn(t testing.TB, ns *testrig.Netns) *State {
	t.Helper()
	var s *State
	if err := ns.Do(func() (err error) { s, err = (Netlink{}).Snapshot(); return err }); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNetlinkApplyRestoreIsExact applies every kind of operation to a real
// namespace and checks that Restore brings back the identical snapshot.
func TestNetlinkApplyRestoreIsExact(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	h, peer := testrig.NewNetns(t, "rst"), testrig.NewNetns(t, "peer")
	testrig.Veth(t, h, "eth0", peer, "eth0")
	testrig.Veth(t, h, "eth1", peer, "eth1")
	h.Run("ip", "addr", "add", "10.0.0.10/24", "dev", "eth0")
	h.Run("ip", "addr", "add", "10.0.0.11/24", "dev", "eth0")
	h.Run("ip", "addr", "add", "172.16.0.10/24", "dev", "eth1")
	h.Run("ip", "route", "add", "default", "via", "10.0.0.1")
	h.Run("ip", "route", "add", "10.50.0.0/16", "via", "172.16.0.1", "table", "100")
	h.Run("ip", "route", "add", "10.60.0.0/16", "dev", "eth1", "metric", "50")
	h.Run("ip", "rule", "add", "from", "172.16.0.10", "lookup", "100", "priority", "1000")
	before := snapshotIn(t, h)
	plan := mustPlan(t, `
operations:
  - {op: add-link, link: vhost0, kind: bridge}
  - {op: add-link, link: va, kind: veth, peer: vb}
  - {op: link-up, link: vhost0}
  - {op: set-master, link: eth0, master: vhost0}
  - {op: move-addresses, link: eth0, target: vhost0}
  - {op: replace-default-route, gateway: 10.0.0.20, link: vhost0}
  - {op: set-addresses, link: eth1, addresses: [172.16.0.99/24]}
  - {op: add-address, link: eth1, address: 172.16.1.1/24}
  - {op: del-address, link: eth1, address: 172.16.1.1/24}
  - {op: add-route, destination: 10.70.0.0/16, gateway: 10.0.0.1, table: 100}
  - {op: del-route, destination: 10.60.0.0/16, link: eth1}
  - {op: set-mtu, link: eth1, mtu: 1400}
  - {op: link-down, link: eth1}
`)
	predicted, err := plan.Validate(before, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = h.Do(func() error {
		for _, op := range plan.Operations {
			if err := Apply(Netlink{}, op); err != nil {
				return fmt.Errorf("%s: %w", op.Op, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	during := snapshotIn(t, h)
	// What the kernel did is what Validate predicted, apart from the routes
	// the kernel makes itself and the veth pairing the model records.
	if d := comparable(predicted).Diff(comparable(during)); len(d) != 0 {
		t.Errorf("kernel differs from Validate's model:\n%s", strings.Join(d, "\n"))
	}
	d := before.Diff(during)
	for _, want := range []string{"link added: {Name:vhost0", "Address:10.0.0.10/24 LinkName:vhost0", "gone: {Address:172.16.0.10/24", "MTU:1400", "10.70.0.0/16"} {
		if !strings.Contains(strings.Join(d, "\n"), want) {
			t.Errorf("applied plan did not show %q; diff:\n%s", want, strings.Join(d, "\n"))
		}
	}
	if err := h.Do(func() error { return (Netlink{}).Converge(before, plan.CreatedLinks()) }); err != nil {
		t.Fatal(err)
	}
	if d := before.Diff(snapshotIn(t, h)); len(d) != 0 {
		t.Fatalf("restore is not exact:\n%s", strings.Join(d, "\n"))
	}
}

// TestLockoutEmulationReverts is TF's takeover with a wrong gateway run as
// a guarded try: the operator loses the host, then regains ping and TCP
// within deadline + revert time, and the journal says why.
func TestLockoutEmulationReverts(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	l := newLab(t)
	timeout := 4 * time.Second
	if os.Getenv("NETGUARD_BENCH_OUT") != "" {
		timeout = Default().Timeout // the benchmark measures the defaults
	}
	g := labGuard(t, timeout)
	before := snapshotIn(t, l.host)
	var out Outcome
	var tryErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.host.Do(func() error { out, tryErr = g.Try(context.Background(), mustPlan(t, labTakeoverPlan)); return nil })
	}()
	waitPending(t, g.Store())
	l.waitLockedOut(t, timeout)
	regained, err := l.waitRegained(timeout + 5*time.Second)
	<-done
	if err != nil {
		t.Fatalf("%v (try: %v)", err, tryErr)
	}
	if !errors.Is(tryErr, ErrReverted) {
		t.Fatalf("try: %v, want reverted", tryErr)
	}
	took := regained.Sub(out.Applied)
	t.Logf("lockout → operator regained ping+TCP in %s (deadline %s, restore %s)", took.Round(time.Millisecond), timeout, out.Restore)
	if took > timeout+5*time.Second {
		t.Fatalf("regained after %s, more than deadline %s + 5s", took, timeout)
	}
	if benchOut := os.Getenv("NETGUARD_BENCH_OUT"); benchOut != "" {
		appendBench(t, benchOut, took)
	}
	if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
		t.Fatalf("snapshot not restored exactly:\n%s", strings.Join(d, "\n"))
	}
	ev, err := g.Store().Events()
	if err != nil {
		t.Fatal(err)
	}
	last := ev[len(ev)-1]
	if last.Event != EventReverted || !strings.Contains(last.Reason, "icmp:"+operatorAddr) || !strings.Contains(last.Reason, "not healthy within") {
		t.Fatalf("journal's last event %+v, want a revert naming the unreachable target", last)
	}
}

// TestHealthyChangeConfirmsOnRealNetwork: a harmless change is kept.
func TestHealthyChangeConfirmsOnRealNetwork(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	l := newLab(t)
	g := labGuard(t, 3*time.Second)
	plan := mustPlan(t, `
operations:
  - {op: set-mtu, link: eth0, mtu: 1400}
  - {op: add-route, destination: 10.77.0.0/16, gateway: 10.0.0.1}
probes: {targets: ["icmp:10.9.0.2", "tcp:10.9.0.2:6443"]}`)
	var out Outcome
	err := l.host.Do(func() (err error) { out, err = g.Try(t.Context(), plan); return err })
	if err != nil || !out.Confirmed {
		t.Fatalf("%+v %v", out, err)
	}
	s := snapshotIn(t, l.host)
	if lk, _ := s.Link("eth0"); lk.MTU != 1400 {
		t.Fatalf("confirmed change not kept: mtu %d", lk.MTU)
	}
	if err := l.operatorReaches(time.Second); err != nil {
		t.Fatal(err)
	}
}

type recordingEvictor struct {
	mu      sync.Mutex
	reasons []string
}

func (e *recordingEvictor) EvictVrouter(_ context.Context, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reasons = append(e.reasons, reason)
	return nil
}

// TestWrapVrouterBringUp guards a change made by someone else (the
// vrouter agent): on lockout the evictor hook runs and vhost0 goes away.
func TestWrapVrouterBringUp(t *testing.T) {
	testrig.RequireRoot(t)
	requireCommands(t)
	l := newLab(t)
	g := labGuard(t, 3*time.Second)
	before := snapshotIn(t, l.host)
	takeover := mustPlan(t, labTakeoverPlan)
	ev := &recordingEvictor{}
	var out Outcome
	err := l.host.Do(func() (err error) {
		out, err = g.Wrap(t.Context(), WrapSpec{Description: "vrouter bring-up", RemoveLinks: []string{"vhost0"},
			Probes: takeover.Probes, Evictor: ev}, func(context.Context) error {
			for _, op := range takeover.Operations { // what TF's vrouter agent does to the host
				if err := Apply(Netlink{}, op); err != nil {
					return err
				}
			}
			return nil
		})
		return err
	})
	if !errors.Is(err, ErrReverted) || out.Confirmed {
		t.Fatalf("wrap: %+v %v", out, err)
	}
	if len(ev.reasons) != 1 || !strings.Contains(ev.reasons[0], "not healthy") {
		t.Fatalf("evictor calls %q, want one with the reason", ev.reasons)
	}
	if d := before.Diff(snapshotIn(t, l.host)); len(d) != 0 {
		t.Fatalf("not restored (vhost0 left?):\n%s", strings.Join(d, "\n"))
	}
	if !strings.Contains(out.Reason, "vrouter taken off this node") {
		t.Fatalf("reason %q", out.Reason)
	}
	if err := l.operatorReaches(time.Second); err != nil {
		t.Fatal(err)
	}
}

// comparable drops what only the kernel or only the model knows: routes the
// kernel adds for addresses, and which veth is whose peer.
func comparable(s *State) *State {
	c := s.Clone()
	c.Routes = slices.DeleteFunc(c.Routes, Route.Kernel)
	for i := range c.Links {
		c.Links[i].Peer = ""
	}
	return c
}
