package cellclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestWaitExists: WaitExists returns at once for a node that exists, waits
// for one that does not until another client creates it, and fails
// clearly on a bad name or when ctx ends.
func TestWaitExists(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	w, c := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.Open(ctx, "/ls/local/here", &cellclient.OpenOptions{Create: fsapi.CreateMust})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := w.WaitExists(ctx, "/ls/local/here"); err != nil || st.Instance != h.Instance() {
		t.Fatalf("WaitExists on an existing node = %+v, %v; want instance %d", st, err, h.Instance())
	}
	// Not there yet: the waiter is still waiting after a while, then sees
	// the creation.
	got := make(chan fsapi.Stat, 1)
	errc := make(chan error, 1)
	go func() {
		st, err := w.WaitExists(ctx, "/ls/local/later")
		got <- st
		errc <- err
	}()
	select {
	case <-got:
		t.Fatalf("WaitExists returned before the node existed: %v", <-errc)
	case <-time.After(300 * time.Millisecond):
	}
	h2, err := c.Open(ctx, "/ls/local/later", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-got:
		if err := <-errc; err != nil || st.Instance != h2.Instance() || st.Size != 1 {
			t.Fatalf("WaitExists = %+v, %v; want instance %d", st, err, h2.Instance())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitExists did not return after the create")
	}
	// A read after WaitExists sees the node (the event comes after the
	// change is applied).
	if _, err := w.Open(ctx, "/ls/local/later", nil); err != nil {
		t.Fatalf("open after WaitExists: %v", err)
	}
	if _, err := w.WaitExists(ctx, "/ls/local/bad name"); !errors.Is(err, fsapi.ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	short, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer scancel()
	if _, err := w.WaitExists(short, "/ls/local/never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitExists past its deadline: %v", err)
	}
}

// TestWaitExistsAcrossMasterCrash: a WaitExists waiting when the master
// crashes still returns when the node is created through the new master,
// and a waiter started while the master is down does too.
func TestWaitExistsAcrossMasterCrash(t *testing.T) {
	cell := recipeCell(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, c := recipeDial(t, ctx, cell.Addrs(), 0), recipeDial(t, ctx, cell.Addrs(), 0)
	type result struct {
		st  fsapi.Stat
		err error
	}
	wait := func(name string) chan result {
		ch := make(chan result, 1)
		go func() {
			st, err := w.WaitExists(ctx, name)
			ch <- result{st, err}
		}()
		return ch
	}
	before := wait("/ls/local/a")
	time.Sleep(200 * time.Millisecond) // the watch is at the master
	m := cell.WaitMaster(t)
	cell.Crash(m)
	during := wait("/ls/local/b")
	time.Sleep(500 * time.Millisecond)
	cell.Restart(m)
	for _, name := range []string{"/ls/local/a", "/ls/local/b"} {
		if _, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range []chan result{before, during} {
		select {
		case r := <-ch:
			if r.err != nil || r.st.Instance == 0 {
				t.Fatalf("waiter %d: %+v %v", i, r.st, r.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("waiter %d did not see the creation", i)
		}
	}
}
