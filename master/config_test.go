package master

import (
	"testing"

	"github.com/haspcell/hasp/master/fsm"
)

// TestEventHistoryStored: --event-history is kept in replica.json, so a
// restart with --dir alone keeps it, and a value given again replaces it.
func TestEventHistoryStored(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ID: "r1", Dir: dir, Listen: "127.0.0.1:1", CellName: "c", EventHistory: 77}
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.store(); err != nil {
		t.Fatal(err)
	}
	again := Config{Dir: dir}
	if ok, err := again.LoadStored(); !ok || err != nil {
		t.Fatalf("LoadStored: %v %v", ok, err)
	}
	if again.EventHistory != 77 {
		t.Fatalf("stored event history %d", again.EventHistory)
	}
	changed := Config{Dir: dir, EventHistory: 5}
	if _, err := changed.LoadStored(); err != nil || changed.EventHistory != 5 {
		t.Fatalf("a given value: %d %v", changed.EventHistory, err)
	}
	fresh := Config{}
	fresh.fillDefaults()
	if fresh.EventHistory != fsm.DefaultEventHistory {
		t.Fatalf("default %d", fresh.EventHistory)
	}
	bad := cfg
	bad.EventHistory = -1
	if bad.Validate() == nil {
		t.Fatal("negative event history accepted")
	}
}
