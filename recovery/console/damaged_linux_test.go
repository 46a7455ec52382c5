package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfsite/tfsite/internal/testrig"
	"github.com/tfsite/tfsite/recovery/netguard"
)

// TestConsoleRollbackOfDamagedRecord: a damaged pending record must not
// leave a console operator, who may have no shell, with no way out. With
// its snapshot intact the "Roll back" entry restores it; with none it moves
// the file aside so that the network reset can run.
func TestConsoleRollbackOfDamagedRecord(t *testing.T) {
	testrig.RequireRoot(t)
	host := testrig.NewNetns(t, "cdmg")
	r := startConsole(t, host, rigOptions{})
	tm := r.tm
	tm.Expect("Enter a number: ")
	stateDir := filepath.Join(r.dir, "net")
	pendingPath := filepath.Join(stateDir, "pending.json")

	// A change recorded with the host's snapshot, applied, then its record
	// damaged (a kind no reader accepts) and its process gone.
	cfg := netguard.Default()
	cfg.StateDir = stateDir
	g, err := netguard.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st netguard.Status
	if err := host.Do(func() (err error) { st, err = g.Show(0); return err }); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	p := &netguard.Pending{Version: 1, ID: "20300101T000000.000Z-1", Kind: "plan", PID: 1, Started: now,
		Deadline: now.Add(time.Second), Settle: netguard.Duration(time.Second), Snapshot: *st.State}
	if err := (netguard.Store{Dir: stateDir}).Init(); err != nil {
		t.Fatal(err)
	}
	if err := (netguard.Store{Dir: stateDir}).WritePending(p); err != nil {
		t.Fatal(err)
	}
	host.Run("ip", "addr", "add", "192.0.2.77/24", "dev", "lo")
	data, err := os.ReadFile(pendingPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pendingPath, []byte(strings.Replace(string(data), `"kind": "plan"`, `"kind": "plxn"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	tm.Send("3")
	tm.Expect("The record of the pending change is damaged.")
	tm.Expect("Reverted " + p.ID + " from its intact snapshot")
	tm.Expect("Press Enter")
	tm.Send("")
	if out := host.Run("ip", "-o", "addr", "show", "dev", "lo"); strings.Contains(out, "192.0.2.77") {
		t.Fatalf("the damaged record's snapshot was not restored: lo still has 192.0.2.77:\n%s", out)
	}
	if _, err := os.Stat(pendingPath); !os.IsNotExist(err) {
		t.Fatalf("pending.json still there after the salvage: %v", err)
	}

	// Nothing readable: moved aside, journaled, and a new change may run.
	if err := os.WriteFile(pendingPath, []byte(`{"version":1,"id":"x","snapshot":{"li`), 0o600); err != nil {
		t.Fatal(err)
	}
	tm.Expect("Enter a number: ")
	tm.Send("3")
	tm.Expect("It holds no readable snapshot: nothing could be reverted.")
	tm.Expect("entry 4 (Reset underlay to DHCP)")
	tm.Expect("Press Enter")
	tm.Send("")
	if _, err := os.Stat(pendingPath); !os.IsNotExist(err) {
		t.Fatalf("pending.json still there after setting it aside: %v", err)
	}
	if aside, _ := filepath.Glob(pendingPath + ".damaged-*"); len(aside) != 2 {
		t.Fatalf("damaged records kept aside: %v, want both", aside)
	}
	ev, err := (netguard.Store{Dir: stateDir}).Events()
	if err != nil {
		t.Fatal(err)
	}
	if last := ev[len(ev)-1]; last.Event != netguard.EventSetAside || !strings.Contains(last.Reason, "the console on pts-test") {
		t.Fatalf("journal's last event %+v, want set-aside by the console", last)
	}
	tm.Expect("Enter a number: ")
	tm.Send("0")
	tm.Expect("Bye.")
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
}
