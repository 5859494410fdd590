package master

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haspcell/hasp/lease"
)

// TestCacheTableBackgroundWaitEndsAtShutdown: a write that gives up
// before a caching session acknowledged its invalidation keeps waiting for
// it in the background, up to the session's lease end, so that later
// writes on the path wait too. That wait must end when the replica shuts
// down: it once outlived crashed replicas in the recipe fault tests, where
// goleak caught it.
func TestCacheTableBackgroundWaitEndsAtShutdown(t *testing.T) {
	stop := make(chan struct{})
	tab := newCacheTable(lease.SystemClock{}, stop)
	w := givenUpWrite(t, tab)
	select {
	case <-w.done:
		t.Fatal("the background wait ended before the session acknowledged or its lease ended")
	case <-time.After(50 * time.Millisecond):
	}
	close(stop)
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the background wait outlived the replica's shutdown")
	}
}

// TestCacheTableForgetsAfterBackgroundWait: the state of a path whose
// write gave up early is forgotten once its background wait ends, so that
// the table does not keep one entry per such path for the replica's life.
func TestCacheTableForgetsAfterBackgroundWait(t *testing.T) {
	tab := newCacheTable(lease.SystemClock{}, nil)
	w := givenUpWrite(t, tab)
	tab.endWrite(w)
	if n := tab.pathStates(); n == 0 {
		t.Fatal("path states forgotten while a session may still cache the file")
	}
	// The session acknowledges: the background wait ends.
	invs, _, _ := tab.keepAlive(7, 0, 0, 0, 0)
	if len(invs) != 1 {
		t.Fatalf("invalidations %v", invs)
	}
	tab.keepAlive(7, invs[0].Seq, 0, 0, 0)
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the background wait did not end after the acknowledgement")
	}
	deadline := time.Now().Add(5 * time.Second)
	for tab.pathStates() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d path states left after the background wait ended", tab.pathStates())
		}
		time.Sleep(time.Millisecond)
	}
	// A read that began before the write still cannot be cached.
	if tab.endRead(readToken{key: "/f", epoch: 0, cacheable: true}) {
		t.Fatal("a read from before the write was cacheable after its state was forgotten")
	}
}

// TestCacheTableWriteEndingInLaterTerm: a write of an earlier term that
// ends (its proposal resolved) after the table was reset for a new term
// must not touch the new term's state of the same node. It once
// decremented the busy count of a write in progress in the new term, and
// a read then registered and was answered cacheable while that write was
// on its way: the reader kept the old contents after the write applied.
func TestCacheTableWriteEndingInLaterTerm(t *testing.T) {
	tab := newCacheTable(lease.SystemClock{}, nil)
	leaseEnd := func(uint64) (time.Time, bool) { return time.Now().Add(time.Hour), true }
	old := tab.beginWrite([]string{"/f"}, nil, at(1))
	if err := tab.waitWrite(context.Background(), old, nil, leaseEnd); err != nil {
		t.Fatal(err)
	}
	tab.reset(0, nil)        // this replica steps down,
	tab.reset(2, []uint64{}) // and leads again
	cur := tab.beginWrite([]string{"/f"}, nil, at(2))
	tab.endWrite(old) // the old proposal resolves only now
	if tok := tab.beginRead(7, "/f", false); tok.cacheable || tab.endRead(tok) {
		t.Fatal("a read was cacheable while a write of the current term was in progress")
	}
	if err := tab.waitWrite(context.Background(), cur, nil, leaseEnd); err != nil {
		t.Fatal(err)
	}
	tab.endWrite(cur)
	if n := tab.pathStates(); n != 0 {
		t.Fatalf("%d path states left after every write ended", n)
	}
}

// TestCacheTableKeepAliveOfEarlierTerm: a KeepAlive handled for a term
// the table no longer serves (the replica stepped down and leads again)
// must not count the client's acknowledgement or flush, which are of the
// earlier term's invalidations. Counted against the later term's, the
// acknowledgement released a write before the client had dropped what it
// changes, and the flush let writes go ahead while the client still held
// data the new term never registered.
func TestCacheTableKeepAliveOfEarlierTerm(t *testing.T) {
	tab := newCacheTable(lease.SystemClock{}, nil)
	tab.reset(1, nil)
	tab.reset(0, nil)         // term 1 ends,
	tab.reset(2, []uint64{7}) // and this replica leads term 2; session 7 may hold term 1's data
	// Session 7 flushes at term 2 and caches /f; a write of /f queues
	// invalidation 1 for it.
	if _, _, ok := tab.keepAlive(7, 0, 0, 2, 2); !ok {
		t.Fatal("a KeepAlive of the table's own term was refused")
	}
	if tok := tab.beginRead(7, "/f", false); !tab.endRead(tok) {
		t.Fatal("read not cacheable")
	}
	w := tab.beginWrite([]string{"/f"}, nil, at(10))
	if len(w.targets) != 1 {
		t.Fatalf("write targets %d sessions, want 1", len(w.targets))
	}
	// A KeepAlive answered for term 1 acknowledges term 1's invalidation 5.
	invs, _, ok := tab.keepAlive(7, 5, 1, 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	leaseEnd := func(uint64) (time.Time, bool) { return time.Now().Add(time.Hour), true }
	if err := tab.waitWrite(ctx, w, nil, leaseEnd); err == nil {
		t.Fatal("the write went ahead on an acknowledgement of another term's invalidation")
	}
	if ok || invs != nil {
		t.Fatalf("a KeepAlive of an earlier term was served: ok %v, invalidations %v", ok, invs)
	}
	if invs, _, _ := tab.keepAlive(7, 0, 0, 0, 2); len(invs) != 1 {
		t.Fatalf("pending invalidations %v, want the write's", invs)
	}

	// The flush: session 8 is inherited unflushed at term 4; a KeepAlive
	// of term 3 reporting a flush at 3 must not count.
	tab.reset(0, nil)
	tab.reset(4, []uint64{8})
	tab.keepAlive(8, 0, 0, 3, 3)
	select {
	case <-tab.flushedCh:
		t.Fatal("a flush at an earlier term counted at this one")
	default:
	}
}

// givenUpWrite has session 7 cache /f, then begins a write of /f that gives
// up at once, before the session acknowledged its invalidation (its
// session lease lasts an hour): its wait goes on in the background.
func givenUpWrite(t *testing.T, tab *cacheTable) *writeTicket {
	t.Helper()
	if !tab.endRead(tab.beginRead(7, "/f", false)) {
		t.Fatal("read not cacheable")
	}
	w := tab.beginWrite([]string{"/f"}, nil, at(1))
	leaseEnd := func(uint64) (time.Time, bool) { return time.Now().Add(time.Hour), true }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tab.waitWrite(ctx, w, nil, leaseEnd); err == nil {
		t.Fatal("waitWrite with an ended context succeeded")
	}
	return w
}

// at is an applied index that stays at rev.
func at(rev uint64) func() uint64 { return func() uint64 { return rev } }

func (t *cacheTable) pathStates() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.paths)
}

// TestCacheTableInvalidationCoversCacheableReads: a write's invalidation
// revision is at least that of every read answered cacheable before the
// write began, so the client refuses such a reply when it crosses the
// invalidation. That holds because the table reads the applied index
// under its lock, after every endRead that came first. The master once
// read it before taking the lock: a read that ended in between, at a
// newer view, was answered cacheable, and its client kept the stale reply
// (row 41).
func TestCacheTableInvalidationCoversCacheableReads(t *testing.T) {
	tab := newCacheTable(lease.SystemClock{}, nil)
	var applied atomic.Uint64
	applied.Store(10)
	// Another entry applies; a read registers, takes its view, and is
	// answered cacheable.
	applied.Store(11)
	tok := tab.beginRead(7, "/f", false)
	viewRev := applied.Load()
	if !tab.endRead(tok) {
		t.Fatal("read not cacheable")
	}
	tab.beginWrite([]string{"/f"}, nil, func() uint64 {
		if tab.mu.TryLock() {
			tab.mu.Unlock()
			t.Error("the applied index was read outside the table's lock")
		}
		return applied.Load()
	})
	invs, _, _ := tab.keepAlive(7, 0, 0, 0, 0)
	if len(invs) != 1 || invs[0].Revision < viewRev {
		t.Fatalf("invalidation %v is below the cacheable read's revision %d", invs, viewRev)
	}
}

// TestCacheTableReadStraddlingWholeWrite: a read that registered before a
// write began and finishes after that write ended must not be cacheable.
// Its view may have been taken between the write's invalidation and its
// apply, at a revision above the invalidation's, so the client's
// revision marks would not refuse it. The table once forgot a path's write
// epoch when its last write ended, and the read's epoch check passed
// (bug table row 32: a stale cached read in TestProcFault).
func TestCacheTableReadStraddlingWholeWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		listing bool
	}{{"node", false}, {"listing", true}} {
		t.Run(tc.name, func(t *testing.T) {
			tab := newCacheTable(lease.SystemClock{}, nil)
			tok := tab.beginRead(7, "/d", tc.listing)
			var w *writeTicket
			if tc.listing {
				w = tab.beginWrite([]string{"/d/f"}, []string{"/d"}, at(10))
			} else {
				w = tab.beginWrite([]string{"/d"}, nil, at(10))
			}
			if len(w.targets) != 1 {
				t.Fatalf("write targets %d sessions, want 1", len(w.targets))
			}
			tab.keepAlive(7, w.targets[0].seq, 0, 0, 0) // acknowledged
			if err := tab.waitWrite(context.Background(), w, nil, func(uint64) (time.Time, bool) {
				return time.Now().Add(time.Hour), true
			}); err != nil {
				t.Fatal(err)
			}
			tab.endWrite(w)
			if tab.endRead(tok) {
				t.Fatal("a read that straddled a whole write was cacheable")
			}
			// A read that begins after the write ended is cacheable again.
			if tok := tab.beginRead(7, "/d", tc.listing); !tab.endRead(tok) {
				t.Fatal("a read after the write was not cacheable")
			}
		})
	}
}

// TestCacheTableReadAcrossReset: a read that began in one term and ends
// after the table was reset for another is not cacheable: its
// registration was forgotten, so no write of the new term would
// invalidate it.
func TestCacheTableReadAcrossReset(t *testing.T) {
	tab := newCacheTable(lease.SystemClock{}, nil)
	tok := tab.beginRead(7, "/f", false)
	tab.reset(0, nil)
	if tab.endRead(tok) {
		t.Fatal("a read across a reset was cacheable")
	}
}

// TestCacheTableDeleteInvalidatesListing: deleting a directory changes its
// listing (it is gone), so sessions that cached the listing are told, as
// well as those that cached the node.
func TestCacheTableDeleteInvalidatesListing(t *testing.T) {
	tab := newCacheTable(lease.SystemClock{}, nil)
	if tok := tab.beginRead(7, "/d", true); !tab.endRead(tok) {
		t.Fatal("listing read not cacheable")
	}
	w := tab.beginWrite([]string{"/d", "/"}, []string{"/"}, at(10))
	defer tab.endWrite(w)
	if len(w.targets) != 1 || w.targets[0].cs.id != 7 {
		t.Fatalf("deleting /d targets %v, want session 7 (which cached its listing)", w.targets)
	}
	if tok := tab.beginRead(8, "/d", true); tab.endRead(tok) {
		t.Fatal("a listing read during the delete was cacheable")
	}
}
