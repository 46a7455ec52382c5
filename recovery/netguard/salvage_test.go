package netguard

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSalvagePendingFindsAnIntactSnapshot(t *testing.T) {
	good, err := json.MarshalIndent(samplePending(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Index(string(good), `"plan": `)
	snap := strings.Index(string(good), `"snapshot"`)
	for name, tc := range map[string]struct {
		data        string
		removeKnown bool
	}{
		"cut in the plan":    {string(good[:plan+40]), true},
		"garbled head":       {strings.Replace(string(good), `"version": 1,`, `"version": 1,, "descr`, 1), true},
		"unknown version":    {strings.Replace(string(good), `"version": 1`, `"version": 9`, 1), true},
		"no links to delete": {strings.Replace(string(good[:plan-4]), `"vhost0"`, `"bad name!"`, 1), false},
	} {
		p, removeKnown, err := salvagePending([]byte(tc.data))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d := hostState().Diff(&p.Snapshot); len(d) != 0 || p.ID != "x-1" || p.PID != 42 || removeKnown != tc.removeKnown {
			t.Errorf("%s: salvaged %+v (removeKnown %v), diff %v", name, p, removeKnown, d)
		}
		if tc.removeKnown && !slices.Equal(p.RemoveLinks, []string{"vhost0"}) {
			t.Errorf("%s: links to delete %v, want [vhost0]", name, p.RemoveLinks)
		}
	}
	for name, data := range map[string]string{
		"cut in the snapshot": string(good[:snap+60]),
		"zeroed":              strings.Repeat("\x00", len(good)),
		"bad link name":       strings.Replace(string(good), `"name": "eth0"`, `"name": "eth0/../x"`, 1),
		"unknown field":       strings.Replace(string(good), `"links": [`, `"evil": 1, "links": [`, 1),
		"no links":            `{"snapshot": {"links": [], "addresses": [], "routes": [], "rules": []}}`,
	} {
		if _, _, err := salvagePending([]byte(data)); err == nil {
			t.Errorf("%s: salvaged a snapshot that is not intact", name)
		}
	}
}

func writeRaw(t *testing.T, st Store, data []byte) {
	t.Helper()
	if err := st.Init(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.path(pendingFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverNamesTheWayOutAndSalvageReverts(t *testing.T) {
	g, k := newTestGuard(t)
	good, _ := json.MarshalIndent(samplePending(t), "", "  ")
	writeRaw(t, g.Store(), good[:strings.Index(string(good), `"plan": `)+20])
	changedHost := k.State() // the change
	changedHost.Routes[0].Gateway = changedHost.Routes[0].Gateway.Next()
	k.Set(changedHost)
	changed := k.State()

	_, err := g.Recover()
	path := g.Store().path(pendingFile)
	if !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "tfsite net recover --salvage") {
		t.Fatalf("recover of a damaged record: %v; want one line naming %s and the fix", err, path)
	}
	if len(changed.Diff(k.State())) != 0 || len(k.Converged()) != 0 {
		t.Fatal("recover without --salvage changed the network")
	}
	p, err := g.Salvage()
	if err != nil || p.ID != "x-1" {
		t.Fatalf("salvage: %v %v", p, err)
	}
	if d := hostState().Diff(k.State()); len(d) != 0 {
		t.Fatalf("not restored: %v", d)
	}
	if _, err := g.Store().Pending(); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("the damaged record is still pending: %v", err)
	}
	aside, _ := filepath.Glob(path + ".damaged-*")
	if len(aside) != 1 {
		t.Fatalf("damaged record moved aside to %v, want one file", aside)
	}
	ev, _ := g.Store().Events()
	if last := ev[len(ev)-1]; last.Event != EventReverted || !strings.Contains(last.Reason, "salvaged from a damaged record (moved to "+aside[0]+")") || !strings.Contains(last.Reason, "pid 42") {
		t.Fatalf("journal %+v", last)
	}
}

func TestSalvageWithoutSnapshotRevertsNothing(t *testing.T) {
	g, k := newTestGuard(t)
	writeRaw(t, g.Store(), []byte(`{"version":1,"id":"x-1","snapshot":{"links":[{"na`))
	_, err := g.Salvage()
	path := g.Store().path(pendingFile)
	for _, want := range []string{path, "nothing was reverted", "mv " + path, `"Reset underlay to DHCP"`} {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("salvage with no snapshot: %v; want one line with %q", err, want)
		}
	}
	if len(k.Converged()) != 0 {
		t.Fatal("the kernel was touched")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the damaged record was moved without a revert: %v", err)
	}
}

// SetAside moves only a damaged record with nothing to restore, never an
// intact one or one whose snapshot Salvage could restore, and never over a
// record set aside before.
func TestSetAsideOnlyWhatCannotBeRestored(t *testing.T) {
	g, k := newTestGuard(t)
	if _, err := g.SetAside("test"); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("set aside with nothing pending: %v, want ErrNothingPending", err)
	}
	good, _ := json.MarshalIndent(samplePending(t), "", "  ")
	writeRaw(t, g.Store(), good)
	if _, err := g.SetAside("test"); err == nil || !strings.Contains(err.Error(), "not damaged") {
		t.Fatalf("set aside of an intact record: %v, want a refusal", err)
	}
	writeRaw(t, g.Store(), good[:strings.Index(string(good), `"plan": `)+20])
	if _, err := g.SetAside("test"); err == nil || !strings.Contains(err.Error(), "intact snapshot") {
		t.Fatalf("set aside of a record with a snapshot: %v, want a refusal", err)
	}
	path := g.Store().path(pendingFile)
	var moved []string
	for range 2 {
		writeRaw(t, g.Store(), []byte(`{"version":1,"snap`))
		aside, err := g.SetAside("the console on ttyS0")
		if err != nil || !strings.HasPrefix(aside, path+".damaged-") {
			t.Fatalf("set aside: %q %v", aside, err)
		}
		moved = append(moved, aside)
	}
	if moved[0] == moved[1] {
		t.Fatalf("the second record overwrote the first at %s", moved[0])
	}
	if _, err := g.Store().Pending(); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("still pending: %v", err)
	}
	ev, _ := g.Store().Events()
	if last := ev[len(ev)-1]; last.Event != EventSetAside || !strings.Contains(last.Reason, "set aside by the console on ttyS0") {
		t.Fatalf("journal %+v", last)
	}
	if len(k.Converged()) != 0 {
		t.Fatal("the kernel was touched")
	}
}

func FuzzSalvagePending(f *testing.F) {
	good, _ := json.MarshalIndent(samplePending(&testing.T{}), "", "  ")
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"snapshot":{"links":[{"name":"eth0"}]},"removeLinks":["vhost0"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, _, err := salvagePending(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if errs := checkSnapshot(&p.Snapshot); len(errs) > 0 || checkLinks(p.RemoveLinks) != nil {
			t.Fatalf("salvaged a snapshot that does not pass the checks: %v", errs)
		}
	})
}
