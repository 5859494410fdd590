package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// A worker waits for its configuration to be published: WaitExists
// returns once the file exists, however long that takes.
func ExampleClient_WaitExists() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	worker, admin := dial(ctx, addr), dial(ctx, addr)
	defer worker.Close()
	defer admin.Close()

	ready := make(chan fsapi.Stat)
	go func() {
		st, err := worker.WaitExists(ctx, "/ls/local/published")
		if err != nil {
			panic(err)
		}
		ready <- st
	}()
	time.Sleep(100 * time.Millisecond) // the worker waits...
	if _, err := admin.Open(ctx, "/ls/local/published", &cellclient.OpenOptions{
		Create: fsapi.CreateMust, Contents: []byte("go")}); err != nil {
		panic(err)
	}
	st := <-ready
	fmt.Println("published, size", st.Size)
	// Output:
	// published, size 2
}

// Producers enqueue jobs; a worker takes them in order. Each job is taken
// by one worker at most, even with many workers.
func ExampleQueue() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer, worker := dial(ctx, addr), dial(ctx, addr)
	defer producer.Close()
	defer worker.Close()

	q := cellclient.NewQueue(producer, "/ls/local/jobs")
	for _, job := range []string{"resize a.jpg", "resize b.jpg"} {
		if _, err := q.Enqueue(ctx, []byte(job)); err != nil {
			panic(err)
		}
	}
	wq := cellclient.NewQueue(worker, "/ls/local/jobs")
	for range 2 {
		item, err := wq.Take(ctx) // waits while the queue is empty
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %s\n", item.Name, item.Data)
	}
	// Output:
	// /ls/example/jobs/item-0000000000: resize a.jpg
	// /ls/example/jobs/item-0000000001: resize b.jpg
}

// Three workers start a phase together and finish it together.
func ExampleDoubleBarrier() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	var log []string
	var wg sync.WaitGroup
	for i := range 3 {
		c := dial(ctx, addr)
		defer c.Close()
		wg.Go(func() {
			b := cellclient.NewDoubleBarrier(c, "/ls/local/phase-1", 3)
			if err := b.Enter(ctx, fmt.Sprintf("worker%d", i)); err != nil {
				panic(err)
			}
			mu.Lock()
			log = append(log, "work") // nobody gets here before all three entered
			mu.Unlock()
			if err := b.Leave(ctx); err != nil {
				panic(err)
			}
		})
	}
	wg.Wait()
	fmt.Println(log)
	// Output:
	// [work work work]
}

// Servers join a group; a load balancer watches the members.
func ExampleGroup() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv1, srv2, lb := dial(ctx, addr), dial(ctx, addr), dial(ctx, addr)
	defer lb.Close()
	defer srv1.Close()

	if _, err := cellclient.NewGroup(srv1, "/ls/local/web").Join(ctx, "web1", []byte("10.0.0.1:80")); err != nil {
		panic(err)
	}
	views, err := cellclient.NewGroup(lb, "/ls/local/web").Watch(ctx)
	if err != nil {
		panic(err)
	}
	show := func() {
		v := <-views
		fmt.Print(len(v.Members), " member(s):")
		for _, m := range v.Members {
			fmt.Printf(" %s=%s", m.ID, m.Data)
		}
		fmt.Println()
	}
	show()
	if _, err := cellclient.NewGroup(srv2, "/ls/local/web").Join(ctx, "web2", []byte("10.0.0.2:80")); err != nil {
		panic(err)
	}
	show()
	srv2.Close() // its session ends: the master removes its member
	show()
	// Output:
	// 1 member(s): web1=10.0.0.1:80
	// 2 member(s): web1=10.0.0.1:80 web2=10.0.0.2:80
	// 1 member(s): web1=10.0.0.1:80
}

// A service follows its configuration: the current version first, then
// each new one.
func ExampleClient_WatchConfig() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, admin := dial(ctx, addr), dial(ctx, addr)
	defer svc.Close()
	defer admin.Close()

	conf, err := admin.Open(ctx, "/ls/local/svc.conf", &cellclient.OpenOptions{
		Create: fsapi.CreateMust, Contents: []byte("replicas=3")})
	if err != nil {
		panic(err)
	}
	versions, err := svc.WatchConfig(ctx, "/ls/local/svc.conf")
	if err != nil {
		panic(err)
	}
	v := <-versions
	fmt.Printf("version %d: %s\n", v.Stat.ContentGeneration, v.Data)
	if _, err := conf.SetContents(ctx, []byte("replicas=5"), v.Stat.ContentGeneration); err != nil {
		panic(err)
	}
	v = <-versions
	fmt.Printf("version %d: %s (skipped %d)\n", v.Stat.ContentGeneration, v.Data, v.Skipped)
	// Output:
	// version 1: replicas=3
	// version 2: replicas=5 (skipped 0)
}

// Two processes propose a random seed; both use the one that won.
func ExampleConsensus() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := dial(ctx, addr), dial(ctx, addr)
	defer a.Close()
	defer b.Close()

	va, err := cellclient.NewConsensus(a, "/ls/local/seed").Propose(ctx, []byte("1234"))
	if err != nil {
		panic(err)
	}
	vb, err := cellclient.NewConsensus(b, "/ls/local/seed").Propose(ctx, []byte("9876"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("a uses %s, b uses %s\n", va, vb)
	// Output:
	// a uses 1234, b uses 1234
}

// A reader/writer lock needs no recipe: every node is one. Readers share
// it; a writer waits for the readers before it, and readers that come
// after a waiting writer wait for it (requests are granted in order).
func ExampleHandle_Acquire_readersWriter() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r1c, r2c, wc := dial(ctx, addr), dial(ctx, addr), dial(ctx, addr)
	defer r1c.Close()
	defer r2c.Close()
	defer wc.Close()
	open := func(c *cellclient.Client) *cellclient.Handle {
		h, err := c.Open(ctx, "/ls/local/table", &cellclient.OpenOptions{Create: fsapi.CreateMay})
		if err != nil {
			panic(err)
		}
		return h
	}
	r1, r2, w := open(r1c), open(r2c), open(wc)
	if err := r1.Acquire(ctx, cellclient.Shared); err != nil {
		panic(err)
	}
	if err := r2.Acquire(ctx, cellclient.Shared); err != nil { // readers never block each other
		panic(err)
	}
	fmt.Println("two readers hold the lock")
	written := make(chan struct{})
	go func() {
		if err := w.Acquire(ctx, cellclient.Exclusive); err != nil { // waits for both readers
			panic(err)
		}
		close(written)
	}()
	for { // until the writer's request is queued at the master
		info, err := r1.GetLock(ctx)
		if err != nil {
			panic(err)
		}
		if info.WaiterCount == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-written:
		fmt.Println("the writer got in early")
	default:
		fmt.Println("the writer waits")
	}
	// A reader that comes after the waiting writer does not overtake it.
	late := open(r1c)
	if err := late.TryAcquire(ctx, cellclient.Shared); errors.Is(err, fsapi.ErrHeld) {
		fmt.Println("a later reader waits for the writer")
	}
	r1.Release(ctx)
	r2.Release(ctx)
	<-written
	fmt.Println("the writer holds the lock")
	// Output:
	// two readers hold the lock
	// the writer waits
	// a later reader waits for the writer
	// the writer holds the lock
}
