package cellclient_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestProcWatchAcrossMasterKills: a watcher follows a stream of writes on a
// cell of five haspd processes while the master is killed with SIGKILL
// twice (and restarted after 0.2–1.5 s), and must receive the event of
// every acknowledged write exactly once, in order, and nothing else: the
// writes' returned revisions are exactly the events' revisions, in
// increasing order, and each file's content generations arrive one after
// the other. Writers: 8 clients, each on its own file, 10,000 writes in
// all. With HASP_SOAK=DURATION it writes for that long instead and kills
// the master every 4–10 s. The kill times come from the printed seed
// (HASP_SEED replays them; the writes' interleaving is the machine's).
func TestProcWatchAcrossMasterKills(t *testing.T) {
	if testing.Short() {
		t.Skip("process fault test skipped under -short")
	}
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x77617463))
	const writers, defaultWrites = 8, 10000
	var soak time.Duration
	if s := os.Getenv("HASP_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("HASP_SOAK=%q: %v", s, err)
		}
		soak = d
	}
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 5})
	procMaster(t, cell, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+soak)
	defer cancel()

	setup := procDial(t, ctx, cell.Addrs(), time.Second)
	if _, err := setup.Open(ctx, "/ls/local/w", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		t.Fatal(err)
	}
	for k := range writers {
		if _, err := setup.Open(ctx, fmt.Sprintf("/ls/local/w/f%d", k), &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
			t.Fatal(err)
		}
	}
	watcher := procDial(t, ctx, cell.Addrs(), time.Second)
	events, err := watcher.Watch(ctx, "/ls/local/w", cellclient.WatchOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}

	// The writers: write number n is taken from a shared counter.
	var (
		next    atomic.Int64
		stop    atomic.Bool
		mu      sync.Mutex
		written = map[uint64]string{} // revision → file
		wg      sync.WaitGroup
	)
	start := time.Now()
	for k := range writers {
		c := procDial(t, ctx, cell.Addrs(), time.Second)
		h, err := c.Open(ctx, fmt.Sprintf("/ls/local/w/f%d", k), nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n := next.Add(1)
				if soak == 0 && n > defaultWrites || soak > 0 && time.Since(start) > soak {
					return
				}
				wctx, wcancel := context.WithTimeout(ctx, time.Minute)
				st, err := h.SetContents(wctx, fmt.Appendf(nil, "%d", n), fsapi.AnyGeneration)
				wcancel()
				if err != nil {
					t.Errorf("write %d to %s: %v", n, h.Name(), err)
					stop.Store(true)
					return
				}
				mu.Lock()
				if prev, dup := written[st.ModifiedRevision]; dup {
					t.Errorf("revision %d returned for %s and %s", st.ModifiedRevision, prev, h.Name())
				}
				written[st.ModifiedRevision] = h.Name()
				mu.Unlock()
			}
		}()
	}

	// The nemesis: kill -9 the master twice (a soak: every 4–10 s).
	nemesisDone := make(chan struct{})
	go func() {
		defer close(nemesisDone)
		kills := 0
		for !stop.Load() {
			if soak == 0 {
				if kills == 2 {
					return
				}
				for next.Load() < int64(defaultWrites*(kills+1)/3) && !stop.Load() {
					time.Sleep(5 * time.Millisecond)
				}
			} else {
				time.Sleep(between(rng, 4*time.Second, 10*time.Second))
				if time.Since(start) > soak {
					return
				}
			}
			m := procMaster(t, cell, 30*time.Second)
			at := time.Now()
			cell.Kill(m)
			down := between(rng, 200*time.Millisecond, 1500*time.Millisecond)
			time.Sleep(down)
			cell.Restart(m)
			kills++
			t.Logf("kill -9 master %s at write %d (%.1fs), restarted after %v", cell.ID(m), next.Load(),
				at.Sub(start).Seconds(), down.Round(time.Millisecond))
		}
	}()

	// The watcher: strictly increasing positions, each file's generations
	// one after the other, only modifications of the writers' files.
	seen := map[uint64]string{}
	gens := map[string]uint64{}
	var last cellclient.WatchEvent
	writersDone := make(chan struct{})
	go func() { wg.Wait(); stop.Store(true); close(writersDone) }()
	check := func(e cellclient.WatchEvent) {
		t.Helper()
		switch {
		case e.Err != nil:
			t.Fatalf("watch ended after revision %d: %v", last.Revision, e.Err)
		case e.Kind != cellclient.ChangeModified:
			t.Fatalf("unexpected event %v on %s at %d", e.Kind, e.Name, e.Revision)
		case e.Revision <= last.Revision:
			t.Fatalf("event at revision %d after one at %d (%s then %s)", e.Revision, last.Revision, last.Name, e.Name)
		}
		if g := gens[e.Name]; g != 0 && e.Stat.ContentGeneration != g+1 {
			t.Fatalf("%s: generation %d after %d (revision %d)", e.Name, e.Stat.ContentGeneration, g, e.Revision)
		}
		gens[e.Name] = e.Stat.ContentGeneration
		seen[e.Revision] = e.Name
		last = e
	}
	timeout := time.NewTimer(time.Hour)
	defer timeout.Stop()
	for done := false; ; {
		if done {
			mu.Lock()
			n := len(written)
			mu.Unlock()
			if len(seen) >= n {
				break
			}
		}
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("watch channel closed after revision %d", last.Revision)
			}
			check(e)
		case <-writersDone:
			done, writersDone = true, nil
			timeout.Reset(60 * time.Second)
		case <-timeout.C:
			t.Fatalf("events stopped at revision %d: %d events for %d writes", last.Revision, len(seen), len(written))
		}
	}
	<-nemesisDone
	// Anything more would be an event without a write.
	select {
	case e := <-events:
		t.Fatalf("extra event %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
	mu.Lock()
	defer mu.Unlock()
	for rev, name := range written {
		if seen[rev] != name {
			t.Errorf("write at revision %d to %s: event %q", rev, name, seen[rev])
		}
	}
	if len(seen) != len(written) || t.Failed() {
		t.Fatalf("%d events for %d writes", len(seen), len(written))
	}
	t.Logf("%d writes, every one's event received once and in order, in %v", len(written), time.Since(start).Round(time.Millisecond))
}
