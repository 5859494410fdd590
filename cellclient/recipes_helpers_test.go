package cellclient_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/master/mastertest"
)

// recipeCell starts the five-replica in-process cell the recipe fault
// tests run on (Raft on raft.InmemTransport: crashes and restarts are
// fast).
func recipeCell(t *testing.T) *mastertest.Cell {
	cell := mastertest.New(t, mastertest.Options{N: 5, Inmem: true})
	cell.WaitMaster(t)
	return cell
}

// recipeDial opens a session whose calls outlast a fail-over.
func recipeDial(t *testing.T, ctx context.Context, cell *mastertest.Cell, grace time.Duration) *cellclient.Client {
	t.Helper()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), AttemptTimeout: 2 * time.Second, GracePeriod: grace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// crashMasters crashes the master and restarts it, again and again, until
// done is closed or the deadline passes, and returns with a master
// elected. It runs on the test goroutine (mastertest may call t.Fatal);
// the recipe under test runs in other goroutines meanwhile. The crash is
// in-process kill -9: the replica's Raft and badger stop without a word,
// and Restart reopens the same directory.
func crashMasters(t *testing.T, cell *mastertest.Cell, rng *rand.Rand, done <-chan struct{}, deadline time.Time) int {
	t.Helper()
	crashes := 0
	for time.Now().Before(deadline) {
		select {
		case <-done:
			cell.WaitMaster(t)
			return crashes
		case <-time.After(between(rng, 300*time.Millisecond, 1200*time.Millisecond)):
		}
		m := cell.WaitMaster(t)
		cell.Crash(m)
		time.Sleep(between(rng, 200*time.Millisecond, 1000*time.Millisecond))
		cell.Restart(m)
		crashes++
		t.Logf("crashed and restarted master r%d", m+1)
	}
	cell.WaitMaster(t)
	return crashes
}

// waitDone waits for done, failing the test after timeout.
func waitDone(t *testing.T, done <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("%s did not finish within %v", what, timeout)
	}
}
