package master

import (
	"context"
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
	tok := tab.beginRead(7, "/f", false)
	if !tab.endRead(tok) {
		t.Fatal("read not cacheable")
	}
	w := tab.beginWrite([]string{"/f"}, nil, 1)
	leaseEnd := func(uint64) (time.Time, bool) { return time.Now().Add(time.Hour), true }
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the write gives up at once
	if err := tab.waitWrite(ctx, w, nil, leaseEnd); err == nil {
		t.Fatal("waitWrite with an ended context succeeded")
	}
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
