package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// A watcher follows a directory's subtree: every change, in the order the
// cell applied it, once each, across master fail-overs. On
// fsapi.ErrCompacted it would re-read and watch again from Current+1.
func ExampleClient_Watch() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dial(ctx, addr)
	defer c.Close()

	events, err := c.Watch(ctx, "/ls/local/svc", cellclient.WatchOptions{Recursive: true})
	if err != nil {
		panic(err)
	}
	if _, err := c.Open(ctx, "/ls/local/svc", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		panic(err)
	}
	h, err := c.Open(ctx, "/ls/local/svc/config", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("a")})
	if err != nil {
		panic(err)
	}
	if _, err := h.SetContents(ctx, []byte("b"), fsapi.AnyGeneration); err != nil {
		panic(err)
	}
	for range 3 {
		e := <-events
		var ce *fsapi.CompactedError
		if errors.As(e.Err, &ce) {
			fmt.Println("compacted: re-read, then watch from", ce.Current+1)
			return
		}
		fmt.Println(e.Kind, e.Name, "generation", e.Stat.ContentGeneration)
	}
	// Output:
	// created /ls/example/svc generation 1
	// created /ls/example/svc/config generation 1
	// modified /ls/example/svc/config generation 2
}

// Handle events: a directory's handle told of its children coming and
// going.
func ExampleHandle_Events() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dial(ctx, addr)
	defer c.Close()

	dir, err := c.Open(ctx, "/ls/local/jobs", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true,
		Events: cellclient.EventChildAdded | cellclient.EventChildRemoved})
	if err != nil {
		panic(err)
	}
	job, err := c.Open(ctx, "/ls/local/jobs/j1", &cellclient.OpenOptions{Create: fsapi.CreateMust, Ephemeral: true})
	if err != nil {
		panic(err)
	}
	if err := job.Delete(ctx); err != nil {
		panic(err)
	}
	for range 2 {
		e := <-dir.Events()
		fmt.Println(e.Handle, e.Name)
	}
	// Output:
	// child-added /ls/example/jobs/j1
	// child-removed /ls/example/jobs/j1
}
