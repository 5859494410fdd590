package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master"
	"github.com/haspcell/hasp/master/mastertest"
)

// nextWatch returns the next event, failing after timeout or if the
// channel closed.
func nextWatch(t *testing.T, ch <-chan cellclient.WatchEvent, timeout time.Duration) cellclient.WatchEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return e
	case <-time.After(timeout):
		t.Fatalf("no watch event within %v", timeout)
	}
	return cellclient.WatchEvent{}
}

// noWatch checks that nothing arrives for a while.
func noWatch(t *testing.T, ch <-chan cellclient.WatchEvent, d time.Duration) {
	t.Helper()
	select {
	case e, ok := <-ch:
		t.Fatalf("unexpected event %+v (open %v)", e, ok)
	case <-time.After(d):
	}
}

// closedWatch waits for the channel to close.
func closedWatch(t *testing.T, ch <-chan cellclient.WatchEvent, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			t.Fatalf("event %+v where the channel should close", e)
		case <-deadline:
			t.Fatalf("watch channel still open after %v", timeout)
		}
	}
}

func wantWatch(t *testing.T, e cellclient.WatchEvent, kind cellclient.ChangeKind, name string, rev uint64) {
	t.Helper()
	if e.Err != nil || e.Kind != kind || e.Name != name || (rev != 0 && e.Revision != rev) {
		t.Fatalf("event %v %s at %d (err %v), want %v %s at %d", e.Kind, e.Name, e.Revision, e.Err, kind, name, rev)
	}
}

func TestWatchBasic(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	w, c := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "/ls/test/f"
	// An exists-watch: the name does not exist yet.
	ch, err := w.Watch(ctx, "/ls/local/f", cellclient.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noWatch(t, ch, 100*time.Millisecond)
	h, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	e := nextWatch(t, ch, 5*time.Second)
	wantWatch(t, e, cellclient.ChangeCreated, name, h.Instance())
	if e.Stat.Instance != h.Instance() || e.Stat.Size != 1 {
		t.Fatalf("created stat %+v", e.Stat)
	}
	for i := range 3 {
		st, err := h.SetContents(ctx, fmt.Appendf(nil, "v%d", i), fsapi.AnyGeneration)
		if err != nil {
			t.Fatal(err)
		}
		e := nextWatch(t, ch, 5*time.Second)
		wantWatch(t, e, cellclient.ChangeModified, name, st.ModifiedRevision)
		if e.Stat != st {
			t.Fatalf("event stat %+v, write returned %+v", e.Stat, st)
		}
		// A read after the event sees the change.
		data, err := w.Open(ctx, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := data.GetContentsAndStat(ctx)
		if err != nil || string(got) != fmt.Sprintf("v%d", i) {
			t.Fatalf("read after the event: %q %v", got, err)
		}
	}
	// Writes elsewhere are not delivered.
	if _, err := c.Open(ctx, "/ls/local/f2", &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
		t.Fatal(err)
	}
	if err := h.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	e = nextWatch(t, ch, 5*time.Second)
	wantWatch(t, e, cellclient.ChangeDeleted, name, 0)
	if e.Stat.Instance != h.Instance() || e.Stat.ContentGeneration != 4 {
		t.Fatalf("deleted stat %+v", e.Stat)
	}
	// Created again: a new instance.
	h2, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust})
	if err != nil {
		t.Fatal(err)
	}
	if e := nextWatch(t, ch, 5*time.Second); e.Kind != cellclient.ChangeCreated || e.Stat.Instance != h2.Instance() {
		t.Fatalf("re-created: %+v", e)
	}
	cancel()
	closedWatch(t, ch, 5*time.Second)
	if _, err := w.Watch(context.Background(), "/ls/local/bad name", cellclient.WatchOptions{}); !errors.Is(err, fsapi.ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := w.Watch(context.Background(), "/ls/other/x", cellclient.WatchOptions{}); !errors.Is(err, fsapi.ErrWrongCell) {
		t.Fatalf("other cell: %v", err)
	}
}

func TestWatchRecursiveAndChildren(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	w, c := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec, err := w.Watch(ctx, "/ls/local/d", cellclient.WatchOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	kids, err := w.Watch(ctx, "/ls/local/d", cellclient.WatchOptions{Children: true})
	if err != nil {
		t.Fatal(err)
	}
	root, err := w.Watch(ctx, "/ls/local", cellclient.WatchOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"d", "d/a", "d/a/b", "dx"} {
		if _, err := c.Open(ctx, "/ls/local/"+n, &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := c.Open(ctx, "/ls/local/d/a/b/f", &cellclient.OpenOptions{Create: fsapi.CreateMust, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.SetContents(ctx, []byte("x"), fsapi.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		kind cellclient.ChangeKind
		name string
	}{{cellclient.ChangeCreated, "d"}, {cellclient.ChangeCreated, "d/a"}, {cellclient.ChangeCreated, "d/a/b"},
		{cellclient.ChangeCreated, "d/a/b/f"}, {cellclient.ChangeModified, "d/a/b/f"}} {
		wantWatch(t, nextWatch(t, rec, 5*time.Second), want.kind, "/ls/test/"+want.name, 0)
	}
	for _, want := range []string{"d", "d/a"} {
		wantWatch(t, nextWatch(t, kids, 5*time.Second), cellclient.ChangeCreated, "/ls/test/"+want, 0)
	}
	noWatch(t, kids, 100*time.Millisecond)
	noWatch(t, rec, 10*time.Millisecond) // not dx
	var names []string
	for range 6 {
		names = append(names, nextWatch(t, root, 5*time.Second).Name)
	}
	if names[3] != "/ls/test/dx" {
		t.Fatalf("root watch: %v", names)
	}
	// A session that ends deletes its ephemeral node: an event too.
	c.Close()
	e := nextWatch(t, rec, 10*time.Second)
	wantWatch(t, e, cellclient.ChangeDeleted, "/ls/test/d/a/b/f", 0)
	if e.Stat.EphemeralOwner != c.Session() {
		t.Fatalf("deleted ephemeral: %+v", e.Stat)
	}
}

func TestWatchFromRevision(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	w, c := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMust})
	if err != nil {
		t.Fatal(err)
	}
	var revs []uint64
	for i := range 10 {
		st, err := h.SetContents(ctx, []byte{byte(i)}, fsapi.AnyGeneration)
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, st.ModifiedRevision)
	}
	// From an old revision: the events since, then live ones.
	wctx, wcancel := context.WithCancel(ctx)
	ch, err := w.Watch(wctx, "/ls/local/f", cellclient.WatchOptions{FromRevision: revs[3]})
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, r := range revs[3:7] {
		e := nextWatch(t, ch, 5*time.Second)
		wantWatch(t, e, cellclient.ChangeModified, "/ls/test/f", r)
		last = e.Revision
	}
	wcancel()
	// Resume after the last one seen: no gap, no duplicate.
	ch, err = w.Watch(ctx, "/ls/local/f", cellclient.WatchOptions{FromRevision: last + 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range revs[7:] {
		wantWatch(t, nextWatch(t, ch, 5*time.Second), cellclient.ChangeModified, "/ls/test/f", r)
	}
	st, err := h.SetContents(ctx, []byte("live"), fsapi.AnyGeneration)
	if err != nil {
		t.Fatal(err)
	}
	wantWatch(t, nextWatch(t, ch, 5*time.Second), cellclient.ChangeModified, "/ls/test/f", st.ModifiedRevision)
	noWatch(t, ch, 100*time.Millisecond)
	// The session's end closes the channel.
	w.Close()
	closedWatch(t, ch, 5*time.Second)
}

func TestWatchCompacted(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Tune: func(cfg *master.Config) { cfg.EventHistory = 16 }})
	w, c := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMust})
	if err != nil {
		t.Fatal(err)
	}
	var last fsapi.Stat
	for range 40 {
		if last, err = h.SetContents(ctx, []byte("x"), fsapi.AnyGeneration); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := w.Watch(ctx, "/ls/local/f", cellclient.WatchOptions{FromRevision: h.Instance()})
	if err != nil {
		t.Fatal(err)
	}
	e := nextWatch(t, ch, 5*time.Second)
	var ce *fsapi.CompactedError
	if !errors.Is(e.Err, fsapi.ErrCompacted) || !errors.As(e.Err, &ce) || ce.Current < last.ModifiedRevision ||
		ce.From != h.Instance() || ce.Floor <= ce.From {
		t.Fatalf("compacted watch: %+v (%v)", e, e.Err)
	}
	closedWatch(t, ch, 5*time.Second)
	// The recipe: re-read, then watch from Current+1.
	_, st, err := h.GetContentsAndStat(ctx)
	if err != nil || st.ModifiedRevision > ce.Current {
		t.Fatalf("re-read: %+v %v", st, err)
	}
	ch, err = w.Watch(ctx, "/ls/local/f", cellclient.WatchOptions{FromRevision: ce.Current + 1})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = h.SetContents(ctx, []byte("y"), fsapi.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	wantWatch(t, nextWatch(t, ch, 5*time.Second), cellclient.ChangeModified, "/ls/test/f", st.ModifiedRevision)
	// A watcher that keeps up is never compacted however much else
	// happens: an answer moves it past revisions with nothing for it.
	quiet, err := w.Watch(ctx, "/ls/local/quiet", cellclient.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 60 {
		if _, err := h.SetContents(ctx, []byte("z"), fsapi.AnyGeneration); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Open(ctx, "/ls/local/quiet", &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
		t.Fatal(err)
	}
	wantWatch(t, nextWatch(t, quiet, 5*time.Second), cellclient.ChangeCreated, "/ls/test/quiet", 0)
}

func TestWatchLockEvents(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	w, a, b := dialCell(t, cell), dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ha := openLock(t, ctx, a, "/ls/local/l", nil)
	hb := openLock(t, ctx, b, "/ls/local/l", nil)
	ch, err := w.Watch(ctx, "/ls/local/l", cellclient.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ha.Acquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	e := nextWatch(t, ch, 5*time.Second)
	if e.Kind != cellclient.ChangeLockAcquired || e.Session != a.Session() || e.Mode != cellclient.Exclusive || e.Stat.LockGeneration != 1 {
		t.Fatalf("acquired: %+v", e)
	}
	done := make(chan error, 1)
	go func() { done <- hb.Acquire(ctx, cellclient.Shared) }()
	e = nextWatch(t, ch, 5*time.Second)
	if e.Kind != cellclient.ChangeLockRequested || e.Session != b.Session() || e.Mode != cellclient.Shared {
		t.Fatalf("requested: %+v", e)
	}
	if err := ha.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// The release, then the grant it causes, in the same entry.
	rel := nextWatch(t, ch, 5*time.Second)
	if rel.Kind != cellclient.ChangeLockReleased || rel.Session != a.Session() || rel.Mode != cellclient.Exclusive ||
		rel.Stat.LockGeneration != 1 {
		t.Fatalf("released: %+v", rel)
	}
	e = nextWatch(t, ch, 5*time.Second)
	if e.Kind != cellclient.ChangeLockAcquired || e.Session != b.Session() || e.Stat.LockGeneration != 2 || e.Revision != rel.Revision {
		t.Fatalf("granted to the waiter: %+v", e)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHandleEvents(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	w, c := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Open(ctx, "/ls/local/d", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		t.Fatal(err)
	}
	dir, err := w.Open(ctx, "/ls/local/d", &cellclient.OpenOptions{Events: cellclient.EventChildAdded | cellclient.EventChildRemoved |
		cellclient.EventLockAcquired | cellclient.EventLockReleased})
	if err != nil {
		t.Fatal(err)
	}
	// A file handle that chose contents and conflicting-lock events only.
	fc, err := c.Open(ctx, "/ls/local/d/f", &cellclient.OpenOptions{Create: fsapi.CreateMust})
	if err != nil {
		t.Fatal(err)
	}
	file, err := w.Open(ctx, "/ls/local/d/f", &cellclient.OpenOptions{Events: cellclient.EventContentsModified | cellclient.EventConflictingLock})
	if err != nil {
		t.Fatal(err)
	}
	want := func(ch <-chan cellclient.WatchEvent, bit cellclient.EventMask, name string) cellclient.WatchEvent {
		t.Helper()
		e := nextWatch(t, ch, 5*time.Second)
		if e.Err != nil || e.Handle != bit || e.Name != name {
			t.Fatalf("handle event %v %s (%v %v), want %v %s", e.Handle, e.Name, e.Kind, e.Err, bit, name)
		}
		return e
	}
	// /d/f was created after dir was opened: an added child.
	want(dir.Events(), cellclient.EventChildAdded, "/ls/test/d/f")
	if _, err := fc.SetContents(ctx, []byte("1"), fsapi.AnyGeneration); err != nil { // child modified: not chosen by dir
		t.Fatal(err)
	}
	want(file.Events(), cellclient.EventContentsModified, "/ls/test/d/f")
	lk := openLock(t, ctx, c, "/ls/local/d", nil)
	if err := lk.Acquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	if e := want(dir.Events(), cellclient.EventLockAcquired, "/ls/test/d"); e.Session != c.Session() {
		t.Fatalf("lock acquired by %d", e.Session)
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if e := want(dir.Events(), cellclient.EventLockReleased, "/ls/test/d"); e.Session != c.Session() || e.Mode != cellclient.Exclusive {
		t.Fatalf("lock released by %d in mode %v", e.Session, e.Mode)
	}
	// Conflicting request on the file: one handle holds it, another asks.
	fl := openLock(t, ctx, c, "/ls/local/d/f", nil)
	if err := fl.Acquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	wl := openLock(t, ctx, w, "/ls/local/d/f", nil)
	actx, acancel := context.WithCancel(ctx)
	acquired := make(chan error, 1)
	go func() { acquired <- wl.Acquire(actx, cellclient.Exclusive) }()
	if e := want(file.Events(), cellclient.EventConflictingLock, "/ls/test/d/f"); e.Session != w.Session() {
		t.Fatalf("conflicting request from %d", e.Session)
	}
	acancel()
	<-acquired
	// The withdrawal may finish after Acquire returned: wait for it, so
	// that the release does not hand the lock to w.
	waitFor(t, func() bool { i, err := fl.GetLock(ctx); return err == nil && i.WaiterCount == 0 })
	if err := fl.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Deleting the file: a removed child for dir, and the end for file.
	if err := fc.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	want(dir.Events(), cellclient.EventChildRemoved, "/ls/test/d/f")
	want(file.Events(), cellclient.EventHandleInvalid, "/ls/test/d/f")
	closedWatch(t, file.Events(), 5*time.Second)
	noWatch(t, dir.Events(), 100*time.Millisecond)
	// No events chosen: a closed channel. Close ends a handle's events.
	plain, err := w.Open(ctx, "/ls/local/d", nil)
	if err != nil {
		t.Fatal(err)
	}
	closedWatch(t, plain.Events(), time.Second)
	dir.Close()
	closedWatch(t, dir.Events(), 5*time.Second)
}

// TestHandleEventsFromCachedOpen: an Open answered from the client's cache
// has no revision; a node deleted before its events start is still
// reported invalid.
func TestHandleEventsFromCachedOpen(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	w, c := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
		t.Fatal(err)
	}
	first, err := w.Open(ctx, "/ls/local/f", nil) // caches the stat
	if err != nil {
		t.Fatal(err)
	}
	h, err := w.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Events: cellclient.EventContentsModified})
	if err != nil {
		t.Fatal(err)
	}
	if h.Instance() != first.Instance() {
		t.Fatal("instances differ")
	}
	hc, err := c.Open(ctx, "/ls/local/f", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hc.SetContents(ctx, []byte("x"), fsapi.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	nextWatch(t, h.Events(), 5*time.Second)
	if err := hc.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if e := nextWatch(t, h.Events(), 5*time.Second); e.Handle != cellclient.EventHandleInvalid {
		t.Fatalf("%+v", e)
	}
}

// TestWatchAcrossFailover crashes the master of an in-process cell while a
// watcher follows a writer: every write's event arrives once, in order.
// (cellclient/watch_proc_test.go does this with kill -9 at scale.)
func TestWatchAcrossFailover(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	w, c := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := c.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMust})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := w.Watch(ctx, "/ls/local/f", cellclient.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const writes = 300
	revs := make(chan uint64, writes)
	go func() {
		defer close(revs)
		for i := range writes {
			if i == writes/3 {
				m := cell.WaitMaster(t)
				cell.Crash(m)
				go func() {
					time.Sleep(500 * time.Millisecond)
					cell.Restart(m)
				}()
			}
			st, err := h.SetContents(ctx, []byte{byte(i)}, fsapi.AnyGeneration)
			if err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
			revs <- st.ModifiedRevision
		}
	}()
	gen := uint64(1)
	for rev := range revs {
		e := nextWatch(t, ch, 20*time.Second)
		if e.Err != nil || e.Revision != rev || e.Stat.ContentGeneration != gen+1 {
			t.Fatalf("event %+v (err %v), want revision %d generation %d", e, e.Err, rev, gen+1)
		}
		gen++
	}
	noWatch(t, ch, 200*time.Millisecond)
}
