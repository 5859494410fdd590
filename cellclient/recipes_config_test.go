package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

func nextConfig(t *testing.T, ch <-chan cellclient.ConfigVersion) cellclient.ConfigVersion {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok || v.Err != nil {
			t.Fatalf("config watch ended: %v", v.Err)
		}
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no config version within 10s")
	}
	return cellclient.ConfigVersion{}
}

// TestWatchConfig: a config that does not exist yet is delivered when
// created, then every version, its deletion, and its re-creation.
func TestWatchConfig(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, c := dialCell(t, cell), dialCell(t, cell)
	const name = "/ls/local/app.conf"
	ch, err := w.WatchConfig(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-ch:
		t.Fatalf("a version %+v before the file exists", v)
	case <-time.After(200 * time.Millisecond):
	}
	h, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	if v := nextConfig(t, ch); string(v.Data) != "v1" || v.Stat.ContentGeneration != 1 || v.Skipped != 0 || v.Deleted {
		t.Fatalf("created: %+v", v)
	}
	for i := 2; i <= 4; i++ {
		if _, err := h.SetContents(ctx, fmt.Appendf(nil, "v%d", i), fsapi.AnyGeneration); err != nil {
			t.Fatal(err)
		}
		if v := nextConfig(t, ch); string(v.Data) != fmt.Sprintf("v%d", i) || v.Stat.ContentGeneration != uint64(i) || v.Skipped != 0 {
			t.Fatalf("version %d: %+v", i, v)
		}
	}
	if err := h.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if v := nextConfig(t, ch); !v.Deleted {
		t.Fatalf("after delete: %+v", v)
	}
	h2, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("again")})
	if err != nil {
		t.Fatal(err)
	}
	if v := nextConfig(t, ch); string(v.Data) != "again" || v.Stat.Instance != h2.Instance() || v.Skipped != 0 {
		t.Fatalf("re-created: %+v", v)
	}
	// A watch of an existing file starts with its current version.
	ch2, err := c.WatchConfig(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if v := nextConfig(t, ch2); string(v.Data) != "again" {
		t.Fatalf("first version of a second watch: %+v", v)
	}
	if _, err := w.WatchConfig(ctx, "/ls/local/a b"); !errors.Is(err, fsapi.ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	cancel()
	for range ch { // closed when ctx ends
	}
}

// TestWatchConfigFault writes a config file while the master is crashed
// and restarted. In the first half the writer waits until the watcher
// has delivered each version before writing the next (a rollout): every
// version must be delivered, in order, with its own contents, none
// skipped, none twice; a watch that lost an event across a fail-over
// would stall the rollout and fail. In the second half the writer does
// not wait: versions must still come in strictly increasing order with
// the contents written at that version, Skipped must count exactly the
// versions not delivered, and the last version must be delivered.
func TestWatchConfigFault(t *testing.T) { runWatchConfigFault(t, inprocTarget) }

// TestProcWatchConfigKill is TestWatchConfigFault on five haspd processes, with kill -9 of the master.
func TestProcWatchConfigKill(t *testing.T) { runWatchConfigFault(t, procTarget) }

func runWatchConfigFault(t *testing.T, newTarget func(*testing.T) faultTarget) {
	dur := faultDuration(t, 8*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x636f6e66))
	tg := newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), dur+2*time.Minute)
	defer cancel()
	w, c := recipeDial(t, ctx, tg.addrs, 0), recipeDial(t, ctx, tg.addrs, 0)
	const name = "/ls/local/rollout.conf"
	h, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("gen1")})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := w.WatchConfig(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // protects got and written
	var got []cellclient.ConfigVersion
	written := map[uint64]string{1: "gen1"}
	delivered := make(chan uint64, 1024)
	go func() {
		for v := range ch {
			if v.Err != nil {
				if ctx.Err() == nil {
					t.Errorf("config watch ended: %v", v.Err)
				}
				return
			}
			mu.Lock()
			got = append(got, v)
			mu.Unlock()
			select {
			case delivered <- v.Stat.ContentGeneration:
			default: // only the paced half reads it, and it keeps up
			}
		}
	}()
	deadline := time.Now().Add(dur)
	paced := time.Now().Add(dur / 2)
	var pacedUpTo uint64 = 1
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last uint64
		for i := 2; time.Now().Before(deadline) && !t.Failed(); i++ {
			value := fmt.Sprintf("gen%d-%d", i, seed%1000)
			wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
			st, err := h.SetContents(wctx, []byte(value), fsapi.AnyGeneration)
			wcancel()
			if err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
			mu.Lock()
			written[st.ContentGeneration] = value
			mu.Unlock()
			if time.Now().After(paced) {
				continue
			}
			pacedUpTo = st.ContentGeneration
			// Rollout: wait until the watcher delivers this version.
			for last < st.ContentGeneration {
				select {
				case last = <-delivered:
				case <-time.After(30 * time.Second):
					t.Errorf("version %d was not delivered within 30s (last delivered %d)", st.ContentGeneration, last)
					return
				}
			}
		}
	}()
	crashes := tg.crash(t, rng, done, deadline)
	waitDone(t, done, 2*time.Minute, "the writer")
	final, err := h.GetStat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		n := len(got)
		lastGen := uint64(0)
		if n > 0 {
			lastGen = got[n-1].Stat.ContentGeneration
		}
		mu.Unlock()
		if lastGen == final.ContentGeneration {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the last version %d was not delivered (last delivered %d)", final.ContentGeneration, lastGen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	mu.Lock()
	defer mu.Unlock()
	var prev, skipped uint64
	for _, v := range got {
		g := v.Stat.ContentGeneration
		switch {
		case v.Deleted || v.Stat.Instance != h.Instance():
			t.Fatalf("version %+v of another instance", v)
		case g <= prev:
			t.Fatalf("version %d delivered after %d", g, prev)
		case string(v.Data) != written[g]:
			t.Fatalf("version %d delivered with %q, written with %q", g, v.Data, written[g])
		case prev != 0 && v.Skipped != g-prev-1:
			t.Fatalf("version %d says %d skipped after %d", g, v.Skipped, prev)
		case g <= pacedUpTo && v.Skipped != 0:
			t.Fatalf("version %d skipped %d during the rollout", g, v.Skipped)
		}
		skipped += v.Skipped
		prev = g
	}
	if got[0].Stat.ContentGeneration != 1 {
		t.Fatalf("first version delivered %d, want 1", got[0].Stat.ContentGeneration)
	}
	t.Logf("%d versions (%d paced), %d delivered, %d skipped, %d %s",
		final.ContentGeneration, pacedUpTo, len(got), skipped, crashes, tg.what)
}
