package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestBarrier: with 3 parties, two that entered wait until the third
// enters; bad input fails clearly.
func TestBarrier(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := []*cellclient.Client{dialCell(t, cell), dialCell(t, cell), dialCell(t, cell)}
	const name = "/ls/local/b1"
	passed := make(chan error, 3)
	for i := range 2 {
		go func() { passed <- cellclient.NewBarrier(cs[i], name, 3).Enter(ctx, fmt.Sprint(i)) }()
	}
	select {
	case err := <-passed:
		t.Fatalf("a party passed with 2 of 3 entered: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := cellclient.NewBarrier(cs[2], name, 3).Enter(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-passed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiting party did not pass once 3 entered")
		}
	}
	// A late party passes at once: the barrier is down for good.
	if err := cellclient.NewBarrier(cs[0], name, 3).Enter(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	if err := cellclient.NewBarrier(cs[0], "/ls/local/b2", 3).Enter(ctx, "a/b"); !errors.Is(err, fsapi.ErrBadName) {
		t.Fatalf("id with a slash: %v", err)
	}
	if err := cellclient.NewBarrier(cs[0], "/ls/local/b2", 0).Enter(ctx, "a"); !errors.Is(err, fsapi.ErrBadRequest) {
		t.Fatalf("0 parties: %v", err)
	}
	// An id taken by another session's party.
	if err := cellclient.NewBarrier(cs[1], name, 3).Enter(ctx, "0"); !errors.Is(err, fsapi.ErrExist) {
		t.Fatalf("another session's id: %v", err)
	}
	if err := cellclient.NewDoubleBarrier(cs[0], "/ls/local/b3", 2).Leave(ctx); !errors.Is(err, cellclient.ErrNotEntered) {
		t.Fatalf("Leave before Enter: %v", err)
	}
}

// TestDoubleBarrier: nobody leaves before every party has called Leave,
// and a party whose session ends counts as left.
func TestDoubleBarrier(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := dialCell(t, cell), dialCell(t, cell)
	gone, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	const name = "/ls/local/db"
	var bars []*cellclient.DoubleBarrier
	var wg sync.WaitGroup
	for i, c := range []*cellclient.Client{a, b, gone} {
		bar := cellclient.NewDoubleBarrier(c, name, 3)
		bars = append(bars, bar)
		wg.Go(func() {
			if err := bar.Enter(ctx, fmt.Sprint(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	left := make(chan error, 2)
	go func() { left <- bars[0].Leave(ctx) }()
	go func() { left <- bars[1].Leave(ctx) }()
	select {
	case err := <-left:
		t.Fatalf("a party left while another had not called Leave: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	// The third party's session ends: it counts as left.
	gone.Close()
	for range 2 {
		select {
		case err := <-left:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Leave did not return once every party had left")
		}
	}
}

// TestBarrierFault runs double-barrier rounds of four parties (each its
// own session) while the master is crashed and restarted again and again.
// Each party counts itself in before calling Enter and before calling
// Leave; passing Enter (or Leave) while the count is short of four is a
// violation: someone passed before every party had entered (left).
func TestBarrierFault(t *testing.T) { runBarrierFault(t, inprocTarget) }

// TestProcBarrierKill is TestBarrierFault on five haspd processes, with kill -9 of the master.
func TestProcBarrierKill(t *testing.T) { runBarrierFault(t, procTarget) }

func runBarrierFault(t *testing.T, newTarget func(*testing.T) faultTarget) {
	dur := faultDuration(t, 8*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x62617272))
	tg := newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), dur+2*time.Minute)
	defer cancel()
	const parties = 4
	var cs []*cellclient.Client
	for range parties {
		cs = append(cs, recipeDial(t, ctx, tg.addrs, 0))
	}
	deadline := time.Now().Add(dur)
	done := make(chan struct{})
	var rounds atomic.Int64
	go func() {
		defer close(done)
		for r := 0; time.Now().Before(deadline) && !t.Failed(); r++ {
			barrierRound(t, ctx, cs, fmt.Sprintf("/ls/local/round-%d", r), seed+uint64(r))
			rounds.Add(1)
		}
	}()
	crashes := tg.crash(t, rng, done, deadline)
	waitDone(t, done, 2*time.Minute, "the barrier rounds")
	t.Logf("%d rounds of %d parties, %d %s", rounds.Load(), parties, crashes, tg.what)
	if rounds.Load() == 0 {
		t.Fatal("no round completed")
	}
}

// barrierRound runs one double-barrier round, one party per client, each
// arriving after a random delay.
func barrierRound(t *testing.T, ctx context.Context, cs []*cellclient.Client, name string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var entered, leaving atomic.Int64
	var wg sync.WaitGroup
	for i, c := range cs {
		enterDelay := time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
		workDelay := time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			bar := cellclient.NewDoubleBarrier(c, name, len(cs))
			time.Sleep(enterDelay)
			entered.Add(1)
			if err := bar.Enter(rctx, fmt.Sprintf("party%d", i)); err != nil {
				t.Errorf("%s: party %d: enter: %v", name, i, err)
				return
			}
			if n := entered.Load(); n < int64(len(cs)) {
				t.Errorf("%s: party %d passed Enter with %d of %d parties entered", name, i, n, len(cs))
			}
			time.Sleep(workDelay)
			leaving.Add(1)
			if err := bar.Leave(rctx); err != nil {
				t.Errorf("%s: party %d: leave: %v", name, i, err)
				return
			}
			if n := leaving.Load(); n < int64(len(cs)) {
				t.Errorf("%s: party %d passed Leave with %d of %d parties leaving", name, i, n, len(cs))
			}
		})
	}
	wg.Wait()
}
