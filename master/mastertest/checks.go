package mastertest

import (
	"testing"
	"time"
)

// WaitApplied waits until every running replica has applied at least the
// master's last index.
func (c *Cell) WaitApplied(t testing.TB, timeout time.Duration) {
	t.Helper()
	mi := c.WaitMaster(t)
	target := c.replicas[mi].server.Raft().LastIndex()
	deadline := time.Now().Add(timeout)
	for _, r := range c.replicas {
		for r.server != nil && r.server.FSM().AppliedIndex() < target {
			if time.Now().After(deadline) {
				t.Fatalf("mastertest: %s applied %d, want %d", r.ID, r.server.FSM().AppliedIndex(), target)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// EnsureSameFSM checks that every running replica holds the same namespace
// and sessions, once all have caught up with the master.
func (c *Cell) EnsureSameFSM(t testing.TB) {
	t.Helper()
	c.WaitApplied(t, 10*time.Second)
	var ref []byte
	var refID string
	for _, r := range c.replicas {
		if r.server == nil {
			continue
		}
		b, err := snapshotBytes(r.server.FSM())
		if err != nil {
			t.Fatalf("snapshot %s: %v", r.ID, err)
		}
		if ref == nil {
			ref, refID = b, r.ID
			continue
		}
		if string(b) != string(ref) {
			t.Fatalf("mastertest: FSM of %s differs from %s (%d vs %d bytes)", r.ID, refID, len(b), len(ref))
		}
	}
}
