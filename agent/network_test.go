package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/nethelpers"

	"github.com/tfsite/tfsite/agent/underlay"
	"github.com/tfsite/tfsite/recovery/netguard"
	"github.com/tfsite/tfsite/recovery/oob"
)

// With an advertise address the agent allocates without waiting for DHCP,
// and keeps retrying discovery until a server answers (it used to give up
// after the first failure, leaving "underlay not discovered" forever).
func TestDiscoveryRetriesInBackground(t *testing.T) {
	l := newLab(t, "dhcp-late")
	cfg := l.config("dhcp-late", 1)
	cfg.Underlay.Disabled = false
	cfg.Gossip.AdvertiseAddress = cfg.Gossip.BindAddress
	var calls atomic.Int32
	discover := func(ctx context.Context, _ underlay.Options, _ *slog.Logger) (*underlay.Result, error) {
		if calls.Add(1) <= 2 {
			return nil, fmt.Errorf("discover eth0: %w", underlay.ErrNoResponse)
		}
		return &underlay.Result{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1", GatewaySource: "dhcp-option-3"}, nil
	}
	l.startConfig(cfg, WithDiscover(discover))
	st := l.waitAll(30 * time.Second)["dhcp-late"]
	if st.Allocation == nil {
		t.Fatalf("no allocation while discovery failed: %+v", st)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := l.status("dhcp-late")
		if err != nil {
			t.Fatal(err)
		}
		if st.Underlay != nil && st.Underlay.Gateway == "192.0.2.1" {
			if st.LastError != "" {
				t.Errorf("discovery error still reported after success: %q", st.LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d discovery attempts status underlay = %+v, want gateway 192.0.2.1", calls.Load(), st.Underlay)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := calls.Load(); n < 3 {
		t.Fatalf("discovery ran %d times, want >= 3 (two failures, then success)", n)
	}
}

// blockingDiscover calls check with the options discovery got, then blocks
// until release is closed, so a test can read status in the discovering phase.
func blockingDiscover(check func(underlay.Options), reached chan<- struct{}, release <-chan struct{}) func(context.Context, underlay.Options, *slog.Logger) (*underlay.Result, error) {
	var once sync.Once
	return func(ctx context.Context, opts underlay.Options, _ *slog.Logger) (*underlay.Result, error) {
		once.Do(func() {
			check(opts)
			close(reached)
		})
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &underlay.Result{Interface: "eth0", Address: "192.0.2.10/24", Gateway: "192.0.2.1", GatewaySource: "dhcp-option-3"}, nil
	}
}

func waitReached(t *testing.T, reached <-chan struct{}) {
	t.Helper()
	select {
	case <-reached:
	case <-time.After(15 * time.Second):
		t.Fatal("the agent did not reach underlay discovery within 15s")
	}
}

func TestStartRevertsPendingNetworkChange(t *testing.T) {
	l := newLab(t, "crashed")
	cfg := l.config("crashed", 1)
	cfg.Underlay.Disabled = false
	cfg.Gossip.AdvertiseAddress = cfg.Gossip.BindAddress
	store := netguard.Store{Dir: filepath.Join(cfg.StateDir, NetStateDir)}
	if err := store.Init(); err != nil {
		t.Fatal(err)
	}
	snap := netguard.State{
		Links:     []netguard.Link{{Name: "eth0", Up: true, MTU: 1500}},
		Addresses: []netguard.Address{{Address: netip.MustParsePrefix("192.0.2.10/24"), LinkName: "eth0", Family: nethelpers.FamilyInet4}},
	}
	now := time.Now()
	pending := &netguard.Pending{
		Version: 1, ID: "crash-1", Kind: "guard", Description: "vrouter bring-up",
		PID: 1 << 30, Started: now.Add(-time.Minute), Deadline: now.Add(-50 * time.Second),
		Snapshot: snap, RemoveLinks: []string{"vhost0"},
	}
	if err := store.WritePending(pending); err != nil {
		t.Fatal(err)
	}
	k := netguard.NewModel(nil)
	reached, release := make(chan struct{}), make(chan struct{})
	var pendingAtDiscovery error
	check := func(underlay.Options) { _, pendingAtDiscovery = store.Pending() }
	s := l.startConfig(cfg, WithDiscover(blockingDiscover(check, reached, release)), WithNetGuard(netguard.WithKernel(k)))
	waitReached(t, reached)
	defer close(release)

	if !errors.Is(pendingAtDiscovery, netguard.ErrNothingPending) {
		t.Errorf("at discovery the pending record was still there (Pending() err = %v), want it reverted before discovery", pendingAtDiscovery)
	}
	converged := k.Converged()
	if len(converged) != 1 {
		t.Fatalf("kernel restored %d times, want 1", len(converged))
	}
	if d := converged[0].State.Diff(&snap); len(d) != 0 {
		t.Errorf("restored state differs from the recorded snapshot: %v", d)
	}
	if !slices.Equal(converged[0].RemoveLinks, []string{"vhost0"}) {
		t.Errorf("restore removed links %v, want [vhost0]", converged[0].RemoveLinks)
	}
	events, err := store.Events()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(events); n == 0 || events[n-1].ID != "crash-1" || events[n-1].Event != netguard.EventReverted {
		t.Errorf("journal = %+v, want a last %q event for crash-1", events, netguard.EventReverted)
	}
	st := s.agent.Status(context.Background())
	if !strings.Contains(st.LastError, "reverted change crash-1") {
		t.Errorf("status last error = %q, want it to report the reverted change crash-1", st.LastError)
	}
}

// TestWatcherRevertsChangeWhoseGuardDied: a change recorded after the
// agent started, whose guarding process is gone (no process holds the lock),
// is reverted by the agent once its deadline has passed.
func TestWatcherRevertsChangeWhoseGuardDied(t *testing.T) {
	l := newLab(t, "watched")
	cfg := l.config("watched", 1)
	cfg.Underlay.Disabled = false
	cfg.Gossip.AdvertiseAddress = cfg.Gossip.BindAddress
	store := netguard.Store{Dir: filepath.Join(cfg.StateDir, NetStateDir)}
	k := netguard.NewModel(nil)
	reached, release := make(chan struct{}), make(chan struct{})
	s := l.startConfig(cfg, WithDiscover(blockingDiscover(func(underlay.Options) {}, reached, release)), WithNetGuard(netguard.WithKernel(k)))
	waitReached(t, reached)
	defer close(release)

	snap := netguard.State{Links: []netguard.Link{{Name: "eth0", Up: true, MTU: 1500}}}
	now := time.Now()
	pending := &netguard.Pending{
		Version: 1, ID: "killed-1", Kind: "plan", Description: "vhost0 takeover",
		PID: 1 << 30, Started: now, Deadline: now.Add(time.Second), Snapshot: snap, RemoveLinks: []string{"vhost0"},
	}
	if err := store.Init(); err != nil {
		t.Fatal(err)
	}
	if err := store.WritePending(pending); err != nil {
		t.Fatal(err)
	}
	var restored int
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		restored = len(k.Converged())
		if restored > 0 {
			break
		}
	}
	if restored != 1 {
		t.Fatalf("kernel restored %d times within 10 s of a change whose guard is gone, want 1", restored)
	}
	if took := time.Since(now); took < time.Second {
		t.Errorf("reverted %s after the change was recorded, before its 1 s deadline", took)
	}
	// The status is set once the revert is journalled: wait for it.
	var last string
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if last = s.agent.Status(context.Background()).LastError; strings.Contains(last, "by tfsite-agent: killed-1") {
			break
		}
	}
	if !strings.Contains(last, "by tfsite-agent: killed-1") {
		t.Errorf("status last error = %q, want it to report the change the agent reverted", last)
	}
	events, err := store.Events()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(events); n == 0 || events[n-1].ID != "killed-1" || events[n-1].Event != netguard.EventReverted ||
		!strings.Contains(events[n-1].Reason, "reverted by tfsite-agent: the guarding process (pid 1073741824) ended before confirming") {
		t.Errorf("journal = %+v, want killed-1 reverted by tfsite-agent", events)
	}
}

func TestStartWithNothingPendingLeavesKernelAlone(t *testing.T) {
	l := newLab(t, "clean")
	cfg := l.config("clean", 1)
	cfg.Underlay.Disabled = false
	cfg.Gossip.AdvertiseAddress = cfg.Gossip.BindAddress
	k := netguard.NewModel(nil)
	reached, release := make(chan struct{}), make(chan struct{})
	s := l.startConfig(cfg, WithDiscover(blockingDiscover(func(underlay.Options) {}, reached, release)), WithNetGuard(netguard.WithKernel(k)))
	waitReached(t, reached)
	defer close(release)
	n := len(k.Converged())
	if n != 0 {
		t.Errorf("kernel restored %d times with nothing pending, want 0", n)
	}
	if st := s.agent.Status(context.Background()); st.LastError != "" {
		t.Errorf("status last error = %q with nothing pending, want none", st.LastError)
	}
}

func TestDiscoverySkipsReservedManagementLinks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		write   func(dir string) error
		want    []string
		wantErr string
	}{
		{
			name: "reserved vrf",
			write: func(dir string) error {
				return oob.Save(dir, &oob.Reservation{Link: "mgmt0", Address: netip.MustParsePrefix("192.168.100.10/24"), Table: 200, Priority: 1000, Mode: oob.ModeVRF, VRF: "mgmt"})
			},
			want: []string{"eth9", "mgmt0", "mgmt"},
		},
		{
			name: "reserved rule on the configured interface",
			write: func(dir string) error {
				return oob.Save(dir, &oob.Reservation{Link: "eth9", Address: netip.MustParsePrefix("192.168.100.10/24"), Table: 200, Priority: 1000, Mode: oob.ModeRule})
			},
			want: []string{"eth9"},
		},
		{name: "none", want: []string{"eth9"}},
		{
			name: "corrupt",
			write: func(dir string) error {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(dir, "reservation.json"), []byte("{not json"), 0o644)
			},
			want:    []string{"eth9"},
			wantErr: "management reservation",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, "mgmt")
			cfg := l.config("mgmt", 1)
			cfg.Underlay.Disabled = false
			cfg.Gossip.AdvertiseAddress = cfg.Gossip.BindAddress
			cfg.ManagementInterface = "eth9"
			if tc.write != nil {
				if err := tc.write(filepath.Join(cfg.StateDir, OOBStateDir)); err != nil {
					t.Fatal(err)
				}
			}
			var skip []string
			reached, release := make(chan struct{}), make(chan struct{})
			s := l.startConfig(cfg, WithDiscover(blockingDiscover(func(o underlay.Options) { skip = o.Skip }, reached, release)))
			waitReached(t, reached)
			defer close(release)
			if !slices.Equal(skip, tc.want) {
				t.Errorf("discovery Options.Skip = %v, want %v", skip, tc.want)
			}
			st := s.agent.Status(context.Background())
			if tc.wantErr == "" && st.LastError != "" || !strings.Contains(st.LastError, tc.wantErr) {
				t.Errorf("status last error = %q, want %q", st.LastError, tc.wantErr)
			}
		})
	}
}
