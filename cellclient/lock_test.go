package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/locks"
	"github.com/haspcell/hasp/master/mastertest"
)

func openLock(t *testing.T, ctx context.Context, c *cellclient.Client, name string, delay *time.Duration) *cellclient.Handle {
	t.Helper()
	h, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMay, LockDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestLockBasics(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	a, b := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ha := openLock(t, ctx, a, "/ls/local/l", nil)
	hb := openLock(t, ctx, b, "/ls/local/l", nil)
	if err := ha.Acquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	seq1, err := ha.GetSequencer()
	if err != nil || seq1.Generation != 1 || seq1.Mode != locks.Exclusive {
		t.Fatalf("sequencer %v %v", seq1, err)
	}
	if err := a.CheckSequencer(ctx, seq1); err != nil {
		t.Fatal(err)
	}
	if err := hb.TryAcquire(ctx, cellclient.Exclusive); !errors.Is(err, fsapi.ErrHeld) {
		t.Fatalf("TryAcquire of a held lock: %v", err)
	}
	if err := ha.Acquire(ctx, cellclient.Exclusive); !errors.Is(err, fsapi.ErrBadRequest) {
		t.Fatalf("second Acquire on the holding handle: %v", err)
	}
	info, err := hb.GetLock(ctx)
	if err != nil || info.Mode != locks.Exclusive || len(info.Holders) != 1 || info.Holders[0].Session != a.Session() {
		t.Fatalf("lock info %+v %v", info, err)
	}

	// b queues; a's release hands the lock to b.
	got := make(chan error, 1)
	go func() { got <- hb.Acquire(ctx, cellclient.Exclusive) }()
	waitFor(t, func() bool { i, _ := ha.GetLock(ctx); return i.WaiterCount == 1 })
	if err := ha.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	seq2, _ := hb.GetSequencer()
	if seq2.Generation != 2 {
		t.Fatalf("generation after hand-off: %v", seq2)
	}
	if err := a.CheckSequencer(ctx, seq1); !errors.Is(err, fsapi.ErrStaleSequencer) {
		t.Fatalf("old sequencer: %v", err)
	}
	if err := ha.Release(ctx); !errors.Is(err, fsapi.ErrNotHeld) {
		t.Fatalf("release of a lock not held: %v", err)
	}
	// A clean Release starts no lock-delay: a's TryAcquire after b's
	// release succeeds at once.
	if err := hb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ha.TryAcquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatalf("TryAcquire after a clean release: %v", err)
	}
	// Deleting a node another session holds locked is refused.
	if err := hb.Delete(ctx); !errors.Is(err, fsapi.ErrHeld) {
		t.Fatalf("delete of a node locked by another: %v", err)
	}
	if _, err := a.Open(ctx, "/ls/local/l2", &cellclient.OpenOptions{Create: fsapi.CreateMay, LockDelay: cellclient.LockDelay(61 * time.Second)}); !errors.Is(err, fsapi.ErrBadRequest) {
		t.Fatalf("lock-delay over the maximum: %v", err)
	}
	if _, err := a.Open(ctx, "/ls/local/l2", &cellclient.OpenOptions{Create: fsapi.CreateMay, LockDelay: cellclient.LockDelay(-time.Second)}); !errors.Is(err, fsapi.ErrBadRequest) {
		t.Fatalf("negative lock-delay: %v", err)
	}
	cell.EnsureSameFSM(t)
}

func TestLockShared(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	c := dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var hs []*cellclient.Handle
	for range 3 {
		hs = append(hs, openLock(t, ctx, c, "/ls/local/rw", nil))
	}
	for _, h := range hs[:2] {
		if err := h.TryAcquire(ctx, cellclient.Shared); err != nil {
			t.Fatal(err)
		}
	}
	if err := hs[2].TryAcquire(ctx, cellclient.Exclusive); !errors.Is(err, fsapi.ErrHeld) {
		t.Fatalf("exclusive over shared: %v", err)
	}
	s0, _ := hs[0].GetSequencer()
	s1, _ := hs[1].GetSequencer()
	if s0 != s1 || s0.Mode != locks.Shared {
		t.Fatalf("shared holders' sequencers %v %v", s0, s1)
	}
}

// Cancelling an Acquire withdraws it: the next waiter is not blocked by it,
// and the cancelled handle holds nothing.
func TestLockAcquireCancel(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	c := dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	holder := openLock(t, ctx, c, "/ls/local/l", nil)
	quitter := openLock(t, ctx, c, "/ls/local/l", nil)
	next := openLock(t, ctx, c, "/ls/local/l", nil)
	if err := holder.Acquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithCancel(ctx)
	qerr := make(chan error, 1)
	go func() { qerr <- quitter.Acquire(qctx, cellclient.Exclusive) }()
	waitFor(t, func() bool { i, _ := holder.GetLock(ctx); return i.WaiterCount == 1 })
	nerr := make(chan error, 1)
	go func() { nerr <- next.Acquire(ctx, cellclient.Exclusive) }()
	waitFor(t, func() bool { i, _ := holder.GetLock(ctx); return i.WaiterCount == 2 })
	qcancel()
	if err := <-qerr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v", err)
	}
	waitFor(t, func() bool { i, _ := holder.GetLock(ctx); return i.WaiterCount == 1 })
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-nerr; err != nil {
		t.Fatal(err)
	}
	if _, err := quitter.GetSequencer(); !errors.Is(err, fsapi.ErrNotHeld) {
		t.Fatalf("cancelled handle: %v", err)
	}
}

// No herd: 200 waiters on one lock; every release wakes exactly one of
// them, at the master (its wake-up counter) and at the clients (exactly one
// Acquire returns).
func TestLockNoHerd(t *testing.T) {
	const waiters = 200
	cell := mastertest.New(t, mastertest.Options{N: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var clients []*cellclient.Client
	for range 10 {
		clients = append(clients, dialCell(t, cell))
	}
	first := openLock(t, ctx, clients[0], "/ls/local/herd", nil)
	if err := first.Acquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	granted := make(chan *cellclient.Handle, waiters)
	var wg sync.WaitGroup
	for i := range waiters {
		h := openLock(t, ctx, clients[i%len(clients)], "/ls/local/herd", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.Acquire(ctx, cellclient.Exclusive); err != nil {
				t.Error(err)
				return
			}
			granted <- h
		}()
	}
	waitFor(t, func() bool { i, _ := first.GetLock(ctx); return i.WaiterCount == waiters })
	m := cell.Replica(cell.WaitMaster(t)).Server()
	wakeups := func() uint64 { return m.LockWakeups() }
	base := wakeups()
	cur := first
	for i := range waiters {
		if err := cur.Release(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case cur = <-granted:
		case <-ctx.Done():
			t.Fatalf("release %d: no waiter was granted", i)
		}
		// Give any wrongly woken waiter time to show up.
		time.Sleep(2 * time.Millisecond)
		if n := len(granted); n != 0 {
			t.Fatalf("release %d woke %d extra waiters", i, n)
		}
		if w := wakeups() - base; w != uint64(i+1) {
			t.Fatalf("after %d releases the master woke %d waiting calls", i+1, w)
		}
	}
	if err := cur.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	t.Logf("%d releases, %d wake-ups", waiters, wakeups()-base)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A long wait for a lock must not pin the session's write numbering: the
// client goes on writing (more than the replica keeps unacknowledged
// answers for) while one of its handles waits.
func TestLockWaitDoesNotPinWrites(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	a, b := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ha := openLock(t, ctx, a, "/ls/local/l", nil)
	hb := openLock(t, ctx, b, "/ls/local/l", nil)
	if err := ha.Acquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- hb.Acquire(ctx, cellclient.Exclusive) }()
	waitFor(t, func() bool { i, _ := ha.GetLock(ctx); return i.WaiterCount == 1 })
	f := openLock(t, ctx, b, "/ls/local/data", nil)
	// 4,200 writes (fsm.MaxUnacked is 4096) from 16 goroutines, so that
	// they share fsyncs.
	const writers, each = 16, 4200/16 + 1
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				if _, err := f.SetContents(ctx, []byte{byte(w), byte(i)}, fsapi.AnyGeneration); err != nil {
					errs <- fmt.Errorf("write %d.%d while a lock request waits: %w", w, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := ha.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
