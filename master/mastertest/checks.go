package mastertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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
// and sessions, once all have caught up with the master. The master commits
// no-ops every few hundred milliseconds, so replicas are compared until
// they agree at one instant (a real divergence never converges).
func (c *Cell) EnsureSameFSM(t testing.TB) {
	t.Helper()
	c.WaitApplied(t, 10*time.Second)
	var last error
	for try := 0; try < 100; try++ {
		if last = c.compareFSMs(); last == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal(last)
}

// compareFSMs captures every replica's state first (O(1) each) and only
// then encodes the captures: encoding a large state takes longer than the
// master's no-op interval, and encoding while capturing made replicas
// differ by the no-ops applied meanwhile, never agreeing at one instant.
func (c *Cell) compareFSMs() error {
	type capture struct {
		id   string
		snap raft.FSMSnapshot
	}
	var caps []capture
	for _, r := range c.replicas {
		if r.server == nil {
			continue
		}
		snap, err := r.server.FSM().Snapshot()
		if err != nil {
			return fmt.Errorf("snapshot %s: %v", r.ID, err)
		}
		defer snap.Release()
		caps = append(caps, capture{r.ID, snap})
	}
	var ref []byte
	for i, cp := range caps {
		b, err := persistBytes(cp.snap)
		if err != nil {
			return fmt.Errorf("snapshot %s: %v", cp.id, err)
		}
		if i == 0 {
			ref = b
			continue
		}
		if string(b) != string(ref) {
			return fmt.Errorf("mastertest: FSM of %s differs from %s (%d vs %d bytes)", cp.id, caps[0].id, len(b), len(ref))
		}
	}
	return nil
}
