package cellclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/lease"
	"github.com/haspcell/hasp/master"
	"github.com/haspcell/hasp/master/mastertest"
)

func nextEvent(t *testing.T, ch <-chan cellclient.SessionEvent, timeout time.Duration) cellclient.SessionEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return e
	case <-time.After(timeout):
		t.Fatalf("no session event within %v", timeout)
	}
	return cellclient.SessionEvent{}
}

// TestJeopardyThenSafe stops the whole cell for longer than the session
// lease, checks that the client is in jeopardy and its calls wait, then
// restarts the cell within the grace period: the new master extends every
// session's lease, so the session becomes safe again and the call completes.
// (A client cut off from a master that stays up expires instead: the master
// ends its lease on time; see TestSessionExpiry.)
func TestJeopardyThenSafe(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), GracePeriod: 20 * time.Second, AttemptTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	events := c.Events()
	h, err := c.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	poisoned, err := c.Open(ctx, "/ls/local/f", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cell.N() {
		cell.Crash(i)
	}
	if e := nextEvent(t, events, 10*time.Second); e.Kind != cellclient.EventJeopardy {
		t.Fatalf("event %v, want jeopardy", e.Kind)
	}
	if c.State() != lease.Jeopardy {
		t.Fatalf("state %v", c.State())
	}
	// A call in jeopardy waits rather than failing.
	readDone := make(chan error, 1)
	go func() {
		_, _, err := h.GetContentsAndStat(ctx)
		readDone <- err
	}()
	select {
	case err := <-readDone:
		t.Fatalf("call returned in jeopardy: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// Poison makes an outstanding call on that handle fail at once, and every
	// later one; other handles are not affected (see readDone below).
	poisonDone := make(chan error, 1)
	go func() {
		_, err := poisoned.GetStat(ctx)
		poisonDone <- err
	}()
	// Usually the call is waiting by now; if not, it fails at its start, which
	// the assertion accepts too. Without Poison it would block (the cell is down).
	time.Sleep(50 * time.Millisecond)
	poisoned.Poison()
	select {
	case err := <-poisonDone:
		if !errors.Is(err, fsapi.ErrHandleClosed) {
			t.Fatalf("outstanding call on a poisoned handle: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Poison did not end the outstanding call")
	}
	for i := range cell.N() {
		cell.Restart(i)
	}
	if e := nextEvent(t, events, 10*time.Second); e.Kind != cellclient.EventMasterFailover {
		t.Fatalf("event %v, want master-failover", e.Kind)
	}
	if e := nextEvent(t, events, 10*time.Second); e.Kind != cellclient.EventSafe {
		t.Fatalf("event %v, want safe", e.Kind)
	}
	if err := <-readDone; err != nil {
		t.Fatalf("call waiting through jeopardy: %v", err)
	}
	if _, err := poisoned.GetStat(ctx); !errors.Is(err, fsapi.ErrHandleClosed) {
		t.Fatalf("later call on a poisoned handle: %v", err)
	}
}

// TestFailoverEvent crashes the master: the client sees a fail-over event,
// no jeopardy, and its calls just succeed.
func TestFailoverEvent(t *testing.T) {
	// The production session lease (12 s): the claim under test is that a
	// fail-over does not lapse a session's lease at realistic settings; the
	// 3 s test lease leaves ~1 s of margin, too little on a loaded machine.
	cell := mastertest.New(t, mastertest.Options{N: 3, Tune: func(c *master.Config) { c.SessionLease = 12 * time.Second }})
	c := dialCell(t, cell)
	events := c.Events()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMust})
	if err != nil {
		t.Fatal(err)
	}
	cell.Crash(cell.WaitMaster(t))
	if _, err := h.SetContents(ctx, []byte("after"), fsapi.AnyGeneration); err != nil {
		t.Fatalf("write across fail-over: %v", err)
	}
	e := nextEvent(t, events, 10*time.Second)
	if e.Kind != cellclient.EventMasterFailover || e.Epoch == 0 {
		t.Fatalf("event %+v, want master-failover", e)
	}
	// The session lease must not lapse across the fail-over.
	select {
	case e := <-events:
		t.Fatalf("unexpected second event %v", e.Kind)
	case <-time.After(4 * time.Second): // > the 3 s test session lease
	}
}
