//go:build linux

package main

// End-to-end tests against a cell of five real haspd processes: crash the
// whole cell, kill the master under load, and feed replicas hostile input.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// newRand returns a seeded generator and logs the seed; HASP_SEED=n
// replays a run's random choices.
func newRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HASP_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HASP_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("random seed %d (replay with HASP_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed>>1))
}

// TestProcessDurability: every write the cell acknowledged survives kill -9
// of all five replicas, and the replicas come back with only --dir.
func TestProcessDurability(t *testing.T) {
	t0 := time.Now()
	rng := newRand(t)
	cell := startProcCell(t, procOptions{})
	cl := cell.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := cl.Open(ctx, "/ls/proc/d", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		t.Fatal(err)
	}
	const files, workers = 1000, 16
	contents := make([][]byte, files)
	for i := range contents {
		// Distinct contents of varied sizes, up to 8 KiB.
		b := make([]byte, 16+rng.IntN(8<<10))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		copy(b, fmt.Sprintf("f%04d:", i))
		contents[i] = b
	}
	var (
		mu    sync.Mutex
		acked = map[int]bool{}
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= files {
					return
				}
				h, err := cl.Open(ctx, fmt.Sprintf("/ls/proc/d/f%04d", i), &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: contents[i]})
				if err != nil {
					t.Errorf("write f%04d: %v", i, err)
					continue
				}
				h.Close()
				mu.Lock()
				acked[i] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d/%d writes acknowledged in %v", len(acked), files, time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}

	cell.KillAll()
	t.Logf("%.1fs: killed all five replicas with SIGKILL", time.Since(t0).Seconds())
	restartAt := time.Now()
	cell.RestartAll()
	cell.waitMaster(30 * time.Second)
	t.Logf("cell restarted with only --dir; master after %v", time.Since(restartAt).Round(time.Millisecond))

	fresh := cell.dial(t)
	var bad atomic.Int64
	next.Store(0)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= files {
					return
				}
				if !acked[i] {
					continue
				}
				name := fmt.Sprintf("/ls/proc/d/f%04d", i)
				h, err := fresh.Open(ctx, name, nil)
				if err != nil {
					t.Errorf("acknowledged write lost: open %s: %v", name, err)
					bad.Add(1)
					continue
				}
				data, st, err := h.GetContentsAndStat(ctx)
				h.Close()
				switch {
				case err != nil:
					t.Errorf("read %s: %v", name, err)
					bad.Add(1)
				case !bytes.Equal(data, contents[i]):
					t.Errorf("%s: contents differ after restart: got %d bytes %.20q, want %d bytes %.20q", name, len(data), data, len(contents[i]), contents[i])
					bad.Add(1)
				case st.ContentGeneration != 1 || st.Size != uint64(len(contents[i])):
					t.Errorf("%s: stat after restart %+v", name, st)
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d of %d acknowledged writes wrong after kill -9 of the whole cell", bad.Load(), len(acked))
	}
	dir, err := fresh.Open(ctx, "/ls/proc/d", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := dir.ReadDir(ctx); err != nil || len(ents) != files {
		t.Fatalf("ReadDir after restart: %d entries, %v", len(ents), err)
	}

	// The first client's session outlived the crash: the new master extends
	// every session it finds (DESIGN §5), and its keepalives found it.
	h, err := cl.Open(ctx, "/ls/proc/d/f0000", nil)
	if err != nil {
		t.Errorf("pre-crash session after full restart: %v", err)
	} else if data, _, err := h.GetContentsAndStat(ctx); err != nil || !bytes.Equal(data, contents[0]) {
		t.Errorf("pre-crash session read: %v", err)
	}

	t.Logf("%.1fs: all acknowledged writes read back", time.Since(t0).Seconds())

	// Phase 2: kill -9 all five in the middle of a write burst. Every write
	// acknowledged before the kill must survive; one not acknowledged may be
	// there or not, but never torn.
	if _, err := fresh.Open(ctx, "/ls/proc/d2", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		t.Fatal(err)
	}
	burstCtx, stopBurst := context.WithCancel(ctx)
	body := func(i int) []byte { return bytes.Repeat(fmt.Appendf(nil, "g%05d;", i), 1+i%97) }
	acked2 := map[int]bool{}
	var attempted atomic.Int64
	next.Store(0)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for burstCtx.Err() == nil {
				i := int(next.Add(1) - 1)
				attempted.Store(max(attempted.Load(), int64(i+1)))
				h, err := fresh.Open(burstCtx, fmt.Sprintf("/ls/proc/d2/g%05d", i), &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: body(i)})
				if err != nil {
					continue // after the kill: ambiguous or failed, not acknowledged
				}
				h.Close()
				mu.Lock()
				acked2[i] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Duration(1000+rng.IntN(1000)) * time.Millisecond)
	cell.KillAll()
	mu.Lock()
	ackedAtKill := len(acked2)
	mu.Unlock()
	stopBurst()
	wg.Wait()
	t.Logf("%.1fs: phase 2: killed all five mid-burst after %d acknowledged creates", time.Since(t0).Seconds(), ackedAtKill)
	if ackedAtKill == 0 {
		t.Fatal("phase 2: no write acknowledged before the kill")
	}
	cell.RestartAll()
	cell.waitMaster(30 * time.Second)
	third := cell.dial(t)
	d2, err := third.Open(ctx, "/ls/proc/d2", nil)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := d2.ReadDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	present := map[int]bool{}
	for _, e := range ents {
		var i int
		if _, err := fmt.Sscanf(e.Name, "g%05d", &i); err != nil {
			t.Errorf("phase 2: unexpected entry %q", e.Name)
			continue
		}
		present[i] = true
		h, err := third.Open(ctx, "/ls/proc/d2/"+e.Name, nil)
		if err != nil {
			t.Errorf("phase 2: open %s: %v", e.Name, err)
			continue
		}
		data, _, err := h.GetContentsAndStat(ctx)
		h.Close()
		if err != nil || !bytes.Equal(data, body(i)) {
			t.Errorf("phase 2: %s holds %d bytes (%v), want its %d bytes exactly", e.Name, len(data), err, len(body(i)))
		}
	}
	lost := 0
	for i := range acked2 {
		if !present[i] {
			lost++
			if lost <= 10 {
				t.Errorf("phase 2: acknowledged create g%05d lost in the crash", i)
			}
		}
	}
	t.Logf("%.1fs: phase 2: %d acknowledged, %d present after restart (%d attempted), %d lost", time.Since(t0).Seconds(), len(acked2), len(present), attempted.Load(), lost)
	cell.compareReplicaStates(t)
}

// writerErr holds a writer goroutine's first error.
type writerErr struct {
	mu  sync.Mutex
	err error
}

func (w *writerErr) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *writerErr) error() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// TestProcessLeaderKillDuringWrites kills -9 the master twice while eight
// writers run, restarting it (with only --dir) a second later each time.
// Every call must succeed: the client retries across the fail-over, and
// exactly-once retries mean no write is lost or applied twice. Each writer
// keeps two files:
//
//   - w<g>: unconditional SetContents of "w-<g>-<n>", n = 1, 2, ...: at the
//     end it holds the last acknowledged n.
//   - c<g>: compare-and-swap of "c-<k>" at the generation the writer just
//     read: every acknowledged CAS is exactly one generation bump, so the
//     final generation is 1 + acknowledged CASes. A write applied twice
//     bumps it twice; a retried CAS answered with a generation mismatch
//     instead of its stored success fails the writer at once.
func TestProcessLeaderKillDuringWrites(t *testing.T) {
	cell := startProcCell(t, procOptions{})
	cl := cell.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const writers, kills = 8, 2
	if _, err := cl.Open(ctx, "/ls/proc/lk", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		t.Fatal(err)
	}
	type writer struct {
		writerErr
		w, c    *cellclient.Handle
		lastW   int    // last acknowledged n of w<g>
		casAcks int    // acknowledged CASes of c<g>
		gen     uint64 // c<g>'s generation as of the last acknowledged CAS
		calls   int
		slowest time.Duration
	}
	ws := make([]*writer, writers)
	for g := range ws {
		w, err := cl.Open(ctx, fmt.Sprintf("/ls/proc/lk/w%d", g), &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte(fmt.Sprintf("w-%d-0", g))})
		if err != nil {
			t.Fatal(err)
		}
		c, err := cl.Open(ctx, fmt.Sprintf("/ls/proc/lk/c%d", g), &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("c-0")})
		if err != nil {
			t.Fatal(err)
		}
		ws[g] = &writer{w: w, c: c, gen: 1}
	}

	var stop atomic.Bool
	var progress [writers]atomic.Int64
	var wg sync.WaitGroup
	for g, wr := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timed := func(what string, f func(ctx context.Context) error) bool {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				start := time.Now()
				err := f(cctx)
				d := time.Since(start)
				wr.calls++
				wr.slowest = max(wr.slowest, d)
				if err != nil {
					wr.fail(fmt.Errorf("writer %d: %s after %v: %w", g, what, d.Round(time.Millisecond), err))
					return false
				}
				return true
			}
			for !stop.Load() {
				n := wr.lastW + 1
				if !timed(fmt.Sprintf("SetContents w-%d-%d", g, n), func(ctx context.Context) error {
					_, err := wr.w.SetContents(ctx, []byte(fmt.Sprintf("w-%d-%d", g, n)), fsapi.AnyGeneration)
					return err
				}) {
					return
				}
				wr.lastW = n

				var st fsapi.Stat
				if !timed("GetStat c", func(ctx context.Context) (err error) {
					st, err = wr.c.GetStat(ctx)
					return err
				}) {
					return
				}
				if st.ContentGeneration != wr.gen {
					wr.fail(fmt.Errorf("writer %d: c%d has generation %d after %d acknowledged CASes; want %d (a write applied twice, or a stale read)",
						g, g, st.ContentGeneration, wr.casAcks, wr.gen))
					return
				}
				k := wr.casAcks + 1
				var nst fsapi.Stat
				if !timed(fmt.Sprintf("CAS c-%d at generation %d", k, st.ContentGeneration), func(ctx context.Context) (err error) {
					nst, err = wr.c.SetContents(ctx, []byte(fmt.Sprintf("c-%d", k)), st.ContentGeneration)
					return err
				}) {
					return
				}
				if nst.ContentGeneration != st.ContentGeneration+1 {
					wr.fail(fmt.Errorf("writer %d: CAS at generation %d answered generation %d", g, st.ContentGeneration, nst.ContentGeneration))
					return
				}
				wr.casAcks, wr.gen = k, nst.ContentGeneration
				progress[g].Add(1)
			}
		}()
	}
	// waitProgress waits until every writer completed a few more rounds.
	waitProgress := func(what string) {
		var base [writers]int64
		for g := range base {
			base[g] = progress[g].Load()
		}
		deadline := time.Now().Add(45 * time.Second)
		for g := range base {
			for progress[g].Load() < base[g]+3 {
				if time.Now().After(deadline) || ctx.Err() != nil {
					t.Errorf("writer %d made no progress %s (err so far: %v)", g, what, ws[g].error())
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}

	time.Sleep(1500 * time.Millisecond)
	for k := range kills {
		m := cell.waitMaster(30 * time.Second)
		killedAt := time.Now()
		cell.Kill(m)
		t.Logf("kill %d: SIGKILLed master %s", k+1, cell.ID(m))
		waitProgress("after the master was killed")
		t.Logf("kill %d: all writers progressing again %v after the kill", k+1, time.Since(killedAt).Round(time.Millisecond))
		time.Sleep(max(0, time.Second-time.Since(killedAt)))
		cell.Restart(m)
		t.Logf("kill %d: restarted %s with only --dir", k+1, cell.ID(m))
		waitProgress("after the old master restarted")
		time.Sleep(2 * time.Second)
	}
	stop.Store(true)
	wg.Wait()

	total := 0
	var slowest time.Duration
	for _, wr := range ws {
		if err := wr.error(); err != nil {
			t.Error(err)
		}
		total += wr.calls
		slowest = max(slowest, wr.slowest)
	}
	t.Logf("%d calls by %d writers; slowest call %v", total, writers, slowest.Round(time.Millisecond))
	cell.CheckAlive(t)
	if t.Failed() {
		t.FailNow()
	}

	// Final state, read through a fresh client (fresh session, fresh cache).
	fresh := cell.dial(t)
	for g, wr := range ws {
		h, err := fresh.Open(ctx, fmt.Sprintf("/ls/proc/lk/w%d", g), nil)
		if err != nil {
			t.Fatal(err)
		}
		data, st, err := h.GetContentsAndStat(ctx)
		if want := fmt.Sprintf("w-%d-%d", g, wr.lastW); err != nil || string(data) != want {
			t.Errorf("w%d = %q, %v; want %q, the last acknowledged write", g, data, err, want)
		} else if st.ContentGeneration != uint64(1+wr.lastW) {
			t.Errorf("w%d generation %d after %d acknowledged writes: want %d", g, st.ContentGeneration, wr.lastW, 1+wr.lastW)
		}
		h, err = fresh.Open(ctx, fmt.Sprintf("/ls/proc/lk/c%d", g), nil)
		if err != nil {
			t.Fatal(err)
		}
		data, st, err = h.GetContentsAndStat(ctx)
		if want := fmt.Sprintf("c-%d", wr.casAcks); err != nil || string(data) != want {
			t.Errorf("c%d = %q, %v; want %q", g, data, err, want)
		} else if st.ContentGeneration != uint64(1+wr.casAcks) {
			t.Errorf("c%d generation %d after %d acknowledged CASes: want %d", g, st.ContentGeneration, wr.casAcks, 1+wr.casAcks)
		}
	}
	cell.compareReplicaStates(t)
}
