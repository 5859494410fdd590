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

// faultTarget is a five-replica cell a recipe fault test runs on, with its
// nemesis: crash runs on the test goroutine, crashing (or killing) the
// master and restarting it until done is closed or the deadline passes,
// returns with a master elected, and says how many times it did.
type faultTarget struct {
	addrs []string
	crash func(t *testing.T, rng *rand.Rand, done <-chan struct{}, deadline time.Time) int
	what  string // what crash does, for the log
}

// inprocTarget is the in-process cell with crashMasters.
func inprocTarget(t *testing.T) faultTarget {
	cell := recipeCell(t)
	return faultTarget{addrs: cell.Addrs(), what: "master crashes",
		crash: func(t *testing.T, rng *rand.Rand, done <-chan struct{}, deadline time.Time) int {
			return crashMasters(t, cell, rng, done, deadline)
		}}
}

// procTarget is five haspd processes, started as users start them, with
// kill -9 of the master (killMasters).
func procTarget(t *testing.T) faultTarget {
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 5})
	procMaster(t, cell, 30*time.Second)
	return faultTarget{addrs: cell.Addrs(), what: "kill -9 of the master",
		crash: func(t *testing.T, rng *rand.Rand, done <-chan struct{}, deadline time.Time) int {
			return killMasters(t, cell, rng, done, deadline)
		}}
}

// killMasters is crashMasters for haspd processes: SIGKILL of the master,
// restarted 0.2–1 s later.
func killMasters(t *testing.T, cell *mastertest.ProcCell, rng *rand.Rand, done <-chan struct{}, deadline time.Time) int {
	t.Helper()
	kills := 0
	for time.Now().Before(deadline) {
		select {
		case <-done:
			procMaster(t, cell, 30*time.Second)
			return kills
		case <-time.After(between(rng, 500*time.Millisecond, 1500*time.Millisecond)):
		}
		m := procMaster(t, cell, 30*time.Second)
		cell.Kill(m)
		time.Sleep(between(rng, 200*time.Millisecond, 1000*time.Millisecond))
		cell.Restart(m)
		kills++
		t.Logf("kill -9 master %s, restarted", cell.ID(m))
	}
	procMaster(t, cell, 30*time.Second)
	return kills
}

// recipeDial opens a session whose calls outlast a fail-over.
func recipeDial(t *testing.T, ctx context.Context, addrs []string, grace time.Duration) *cellclient.Client {
	t.Helper()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: addrs, AttemptTimeout: 2 * time.Second, GracePeriod: grace})
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
