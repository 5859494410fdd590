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
	"github.com/haspcell/hasp/master/mastertest"
)

func TestCloseDeletesEphemerals(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	a, b := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Open(ctx, "/ls/local/eph", &cellclient.OpenOptions{Create: fsapi.CreateMust, Ephemeral: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(ctx, "/ls/local/eph", nil); err != nil {
		t.Fatalf("other session cannot see the ephemeral node: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(ctx, "/ls/local/eph", nil); !errors.Is(err, fsapi.ErrNotExist) {
		t.Fatalf("ephemeral node after Close: %v", err)
	}
	if _, err := a.Open(ctx, "/ls/local/x", nil); !errors.Is(err, fsapi.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}

// TestSessionExpiry cuts a client off from a live cell, as a network
// partition would: the master stops hearing its KeepAlives, expires the
// session through Raft at the lease end and deletes its ephemeral node; the
// client, after its short grace period, reports the session expired, and
// every call on every handle fails the same way.
func TestSessionExpiry(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	victim, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), GracePeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	other := dialCell(t, cell)
	h, err := victim.Open(ctx, "/ls/local/owned", &cellclient.OpenOptions{Create: fsapi.CreateMust, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	// Cut the victim off: the master stops hearing its KeepAlives when it
	// can no longer reach any replica.
	victim.CutOffForTest()
	// A call already past its start when the session is cut off, with no
	// deadline of its own, ends with the session (it once retried forever).
	inFlight := make(chan error, 1)
	go func() {
		_, err := h.SetContents(context.Background(), []byte("late"), 0)
		inFlight <- err
	}()
	select {
	case <-victim.Done():
	case <-ctx.Done():
		t.Fatal("session did not expire")
	}
	if !errors.Is(victim.Err(), fsapi.ErrSessionExpired) {
		t.Fatalf("Err = %v", victim.Err())
	}
	select {
	case err := <-inFlight:
		if !errors.Is(err, fsapi.ErrSessionExpired) {
			t.Fatalf("call in flight at expiry: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call in flight at expiry is still retrying")
	}
	// The master expires it through Raft, deleting its ephemeral node.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := other.Open(ctx, "/ls/local/owned", nil)
		if errors.Is(err, fsapi.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ephemeral node still there after expiry: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every call on every handle of the session now fails the same way.
	if _, err := h.GetStat(ctx); !errors.Is(err, fsapi.ErrSessionExpired) {
		t.Fatalf("handle after expiry: %v", err)
	}
	if _, err := victim.Open(ctx, "/ls/local/x", nil); !errors.Is(err, fsapi.ErrSessionExpired) {
		t.Fatalf("open after expiry: %v", err)
	}
}

// TestWritesAcrossMasterCrash crashes the master repeatedly while clients
// write with compare-and-swap. Every call must return success (the client
// retries at the new master) and no write may apply twice: the final
// content generation counts the acknowledged writes exactly.
func TestWritesAcrossMasterCrash(t *testing.T) {
	for _, inmem := range []bool{true, false} {
		t.Run(fmt.Sprintf("inmem=%v", inmem), func(t *testing.T) {
			testWritesAcrossMasterCrash(t, inmem)
		})
	}
}

func testWritesAcrossMasterCrash(t *testing.T, inmem bool) {
	cell := mastertest.New(t, mastertest.Options{N: 5, Inmem: inmem})
	c := dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const writers = 4
	handles := make([]*cellclient.Handle, writers)
	for i := range handles {
		h, err := c.Open(ctx, fmt.Sprintf("/ls/local/w%d", i), &cellclient.OpenOptions{Create: fsapi.CreateMust})
		if err != nil {
			t.Fatal(err)
		}
		handles[i] = h
	}
	stop := make(chan struct{})
	acked := make([]int, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i, h := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := uint64(1)
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				st, err := h.SetContents(ctx, []byte(fmt.Sprint(n)), gen)
				if err != nil {
					errs <- fmt.Errorf("writer %d write %d: %w", i, n, err)
					return
				}
				gen = st.ContentGeneration
				acked[i] = n
			}
		}()
	}
	for crash := 0; crash < 2; crash++ {
		time.Sleep(400 * time.Millisecond)
		m := cell.WaitMaster(t)
		cell.Crash(m)
		time.Sleep(300 * time.Millisecond)
		cell.Restart(m)
	}
	time.Sleep(400 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, h := range handles {
		data, st, err := h.GetContentsAndStat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != fmt.Sprint(acked[i]) || st.ContentGeneration != uint64(acked[i])+1 {
			t.Errorf("writer %d: contents %q generation %d, want %d and %d", i, data, st.ContentGeneration, acked[i], acked[i]+1)
		}
		if acked[i] == 0 {
			t.Errorf("writer %d made no progress", i)
		}
	}
	cell.EnsureSameFSM(t)
}
