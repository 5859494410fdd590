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

// Cached reads are served without an RPC, and a write by another client
// completes only after the cached copy is gone: every read after the write
// sees it.
func TestCacheHitsAndInvalidation(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	a, b := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fa, err := a.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMay, Contents: []byte("v0")})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := b.Open(ctx, "/ls/local/f", nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		data, _, err := fa.GetContentsAndStat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	read()
	hits := a.CacheStats().Hits
	for range 10 {
		if got := read(); got != "v0" {
			t.Fatalf("read %q", got)
		}
	}
	if a.CacheStats().Hits-hits != 10 {
		t.Fatalf("10 repeated reads made %d cache hits", a.CacheStats().Hits-hits)
	}
	for i := 1; i <= 50; i++ {
		want := fmt.Sprintf("v%d", i)
		if _, err := fb.SetContents(ctx, []byte(want), fsapi.AnyGeneration); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != want {
			t.Fatalf("after the write of %q completed, a cached read returned %q", want, got)
		}
		read() // and this one is a hit again
	}
	if st := a.CacheStats(); st.Invalidations < 50 {
		t.Fatalf("stats %+v: want ≥ 50 invalidations", st)
	}

	// Absence is cached too, and a create invalidates it.
	if _, err := a.Open(ctx, "/ls/local/g", nil); !errors.Is(err, fsapi.ErrNotExist) {
		t.Fatal(err)
	}
	hits = a.CacheStats().Hits
	if _, err := a.Open(ctx, "/ls/local/g", nil); !errors.Is(err, fsapi.ErrNotExist) || a.CacheStats().Hits != hits+1 {
		t.Fatalf("second open of an absent name: %v (hits %d → %d)", err, hits, a.CacheStats().Hits)
	}
	if _, err := b.Open(ctx, "/ls/local/g", &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(ctx, "/ls/local/g", nil); err != nil {
		t.Fatalf("open after another client created it: %v", err)
	}

	// Listings: a child created by another client shows at once.
	root, err := a.Open(ctx, "/ls/local", nil)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := root.ReadDir(ctx)
	n := len(ents)
	if _, err := b.Open(ctx, "/ls/local/h", &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := root.ReadDir(ctx); len(ents) != n+1 {
		t.Fatalf("listing after a create: %d entries, want %d", len(ents), n+1)
	}
	if cell.Replica(cell.WaitMaster(t)).Server() == nil {
		t.Fatal("no master")
	}
}

// The crossing race: a read reply about f, held back at the client, is
// overtaken by the invalidation of a write to f. The reply must not be
// cached, or the client would serve the old contents after the write.
func TestCacheCrossingInvalidationRefusesStaleReply(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	a, b := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fa, err := a.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMay, Contents: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := b.Open(ctx, "/ls/local/f", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Hold back the next cacheable reply a client puts.
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cellclient.SetBeforeCachePutForTest(func() {
		once.Do(func() {
			close(arrived)
			<-release
		})
	})
	defer cellclient.SetBeforeCachePutForTest(nil)
	got := make(chan string, 1)
	go func() {
		data, _, err := fa.GetContentsAndStat(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- string(data)
	}()
	<-arrived // a's reply, showing "old", is in hand but not cached
	if _, err := fb.SetContents(ctx, []byte("new"), fsapi.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	// The write completed, so a acknowledged the invalidation, which
	// therefore reached a's cache before the held reply.
	stale := a.CacheStats().Stale
	close(release)
	if v := <-got; v != "old" {
		t.Fatalf("the held read returned %q", v) // it was served before the write
	}
	if a.CacheStats().Stale != stale+1 {
		t.Fatalf("the overtaken reply was not refused: stats %+v", a.CacheStats())
	}
	data, _, err := fa.GetContentsAndStat(ctx)
	if err != nil || string(data) != "new" {
		t.Fatalf("read after the write = %q, %v; the stale reply was cached", data, err)
	}
}

// With caching off every read goes to the master.
func TestCacheDisabled(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMay})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := f.GetContentsAndStat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.CacheStats(); st.Hits != 0 || st.Puts != 0 {
		t.Fatalf("stats with caching off: %+v", st)
	}
}
