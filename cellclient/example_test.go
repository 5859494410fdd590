package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/locks"
	"github.com/haspcell/hasp/master"
	"github.com/haspcell/hasp/master/mastertest"
)

// startCell starts a one-replica cell in this process, for the examples,
// and returns its address and a function that stops it and removes its
// files. A real cell has three or five replicas, each a haspd process.
func startCell() (addr string, stop func()) {
	dir, err := os.MkdirTemp("", "hasp-example-")
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr = ln.Addr().String()
	cfg := mastertest.TestConfig() // master.DefaultConfig with short timeouts
	cfg.ID, cfg.Dir, cfg.Listen, cfg.Listener = "r1", filepath.Join(dir, "r1"), addr, ln
	cfg.CellName, cfg.InitialCell = "example", map[string]string{"r1": addr}
	srv, err := master.New(cfg)
	if err != nil {
		panic(err)
	}
	return addr, func() {
		srv.Close()
		os.RemoveAll(dir)
	}
}

// dial opens a session with the cell at addr.
func dial(ctx context.Context, addr string) *cellclient.Client {
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: []string{addr}})
	if err != nil {
		panic(err)
	}
	return c
}

// storage is a server the lock holder writes to, such as a file server or
// a database. It must not apply a write from a client that has lost the
// lock, even if that write was delayed in the network or the client was
// paused: every write carries the writer's sequencer, as opaque bytes.
type storage struct {
	// fence remembers the newest sequencer seen: it rejects an older one
	// with no RPC and needs no session.
	fence locks.Fence
	// cell, if set, asks the master whether the sequencer is still
	// current: it also rejects a deposed holder that wrote before the new
	// holder's first write (which the fence alone cannot know about).
	cell *cellclient.Client
	data map[string]string
}

// write applies key=value if seqBytes is the sequencer of a current holding
// of the lock on /db-lock.
func (s *storage) write(ctx context.Context, seqBytes []byte, key, value string) error {
	seq, err := locks.ParseSequencer(seqBytes)
	if err != nil {
		return err
	}
	if seq.Path != "/db-lock" || seq.Mode != locks.Exclusive {
		return fmt.Errorf("%v does not name an exclusive hold of /db-lock", seq)
	}
	if err := s.fence.Check(seq); err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	if s.cell != nil {
		if err := s.cell.CheckSequencer(ctx, seq); err != nil {
			return fmt.Errorf("master: %w", err)
		}
	}
	s.data[key] = value
	return nil
}

// outcome prints how a write went, without the error's details (they name
// session ids and node instances).
func outcome(who string, err error) {
	var how string
	switch {
	case err == nil:
		how = "applied"
	case errors.Is(err, fsapi.ErrStaleSequencer):
		by, _, _ := strings.Cut(err.Error(), ":") // "fence" or "master"
		how = "rejected by the " + by + ", stale sequencer"
	default:
		how = "failed: " + err.Error()
	}
	fmt.Printf("%s: %s\n", who, how)
}

// Fencing with sequencers: a lock holder hands its sequencer to the
// storage server with each write, and the server refuses writes from a
// holder that has since lost the lock.
func ExampleHandle_Acquire() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, srvClient := dial(ctx, addr), dial(ctx, addr), dial(ctx, addr)
	defer a.Close()
	defer b.Close()
	defer srvClient.Close()
	srv := &storage{cell: srvClient, data: map[string]string{}}

	ha, err := a.Open(ctx, "/ls/local/db-lock", &cellclient.OpenOptions{Create: fsapi.CreateMay})
	if err != nil {
		panic(err)
	}
	defer ha.Close()
	hb, err := b.Open(ctx, "/ls/local/db-lock", nil)
	if err != nil {
		panic(err)
	}
	defer hb.Close()

	// srv (the storage type above) applies a write only if the sequencer
	// sent with it passes its locks.Fence and Client.CheckSequencer.

	// a takes the lock and writes, sending its sequencer along.
	if err := ha.Acquire(ctx, cellclient.Exclusive); err != nil {
		panic(err)
	}
	seqA, _ := ha.GetSequencer()
	fmt.Printf("a holds %s %v, generation %d\n", seqA.Path, seqA.Mode, seqA.Generation)
	outcome("a writes x=1", srv.write(ctx, seqA.Encode(), "x", "1"))

	// a loses the lock (here it releases it; it could as well have lost
	// its session), and b takes it. a does not know yet, or a write it sent
	// earlier is still on its way.
	if err := ha.Release(ctx); err != nil {
		panic(err)
	}
	if err := hb.Acquire(ctx, cellclient.Exclusive); err != nil {
		panic(err)
	}
	seqB, _ := hb.GetSequencer()
	fmt.Printf("b holds %s %v, generation %d\n", seqB.Path, seqB.Mode, seqB.Generation)

	// The fence has not seen b's sequencer yet, so a's late write gets past
	// it; the master says a's sequencer is stale.
	outcome("a writes x=2", srv.write(ctx, seqA.Encode(), "x", "2"))
	outcome("b writes x=3", srv.write(ctx, seqB.Encode(), "x", "3"))
	// Now the fence has seen b's sequencer: it rejects a's without an RPC.
	// A server with no session to the cell would rely on this alone (and
	// on the lock-delay for writes sent before the new holder's first).
	outcome("a writes x=4", srv.write(ctx, seqA.Encode(), "x", "4"))
	fmt.Println("x =", srv.data["x"])
	// Output:
	// a holds /db-lock exclusive, generation 1
	// a writes x=1: applied
	// b holds /db-lock exclusive, generation 2
	// a writes x=2: rejected by the master, stale sequencer
	// b writes x=3: applied
	// a writes x=4: rejected by the fence, stale sequencer
	// x = 3
}

// Primary election: the first campaign wins, later ones wait in line, and
// a resignation hands leadership to the next.
func ExampleElection() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := dial(ctx, addr), dial(ctx, addr)
	defer a.Close()
	defer b.Close()
	const name = "/ls/local/leader"

	la, err := cellclient.NewElection(a, name).Campaign(ctx, "alpha")
	if err != nil {
		panic(err)
	}
	fmt.Println("elected:", la.Identity())

	// b campaigns too: Campaign blocks until alpha's leadership ends.
	eb := cellclient.NewElection(b, name)
	var lb *cellclient.Leadership
	won := make(chan error, 1)
	go func() {
		var err error
		lb, err = eb.Campaign(ctx, "beta")
		won <- err
	}()
	li, err := eb.Leader(ctx) // anyone may ask who leads
	if err != nil {
		panic(err)
	}
	fmt.Println("leader:", li.Identity, "generation", li.Sequencer.Generation)

	if err := la.Resign(ctx); err != nil {
		panic(err)
	}
	<-la.Done()
	fmt.Println("alpha:", la.Err())
	if err := <-won; err != nil {
		panic(err)
	}
	fmt.Println("elected:", lb.Identity())
	li, err = eb.Leader(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("leader:", li.Identity, "generation", li.Sequencer.Generation)

	if err := lb.Resign(ctx); err != nil {
		panic(err)
	}
	_, err = eb.Leader(ctx)
	fmt.Println("leader:", err)
	// Output:
	// elected: alpha
	// leader: alpha generation 1
	// alpha: cellclient: resigned
	// elected: beta
	// leader: beta generation 2
	// leader: cellclient: no leader: /ls/local/leader is not locked
}

// TryAcquire does not wait: it fails with fsapi.ErrHeld if the lock is held
// in a conflicting mode (or others are queued for it), and with
// fsapi.ErrLockDelay while the lock-delay of a lost holder runs. Each
// handle is a holder of its own, even within one session.
func ExampleHandle_TryAcquire() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := dial(ctx, addr), dial(ctx, addr)
	defer a.Close()
	defer b.Close()
	open := func(c *cellclient.Client) *cellclient.Handle {
		h, err := c.Open(ctx, "/ls/local/job", &cellclient.OpenOptions{Create: fsapi.CreateMay})
		if err != nil {
			panic(err)
		}
		return h
	}
	ha, hb, ha2 := open(a), open(b), open(a)
	defer ha.Close()
	defer hb.Close()
	defer ha2.Close()
	show := func(h *cellclient.Handle) {
		info, err := h.GetLock(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("  lock: %v, %d holder(s), generation %d\n", info.Mode, len(info.Holders), info.Generation)
	}

	fmt.Println("a exclusive:", ha.TryAcquire(ctx, cellclient.Exclusive))
	show(hb)
	err := hb.TryAcquire(ctx, cellclient.Shared)
	fmt.Println("b shared: held:", errors.Is(err, fsapi.ErrHeld))

	if err := ha.Release(ctx); err != nil {
		panic(err)
	}
	fmt.Println("a shared:", ha.TryAcquire(ctx, cellclient.Shared))
	fmt.Println("b shared:", hb.TryAcquire(ctx, cellclient.Shared))
	show(hb)
	err = ha2.TryAcquire(ctx, cellclient.Exclusive)
	fmt.Println("a's second handle exclusive: held:", errors.Is(err, fsapi.ErrHeld))
	// Output:
	// a exclusive: <nil>
	//   lock: exclusive, 1 holder(s), generation 1
	// b shared: held: true
	// a shared: <nil>
	// b shared: <nil>
	//   lock: shared, 2 holder(s), generation 2
	// a's second handle exclusive: held: true
}

// With FollowerReads any replica may answer the client's reads: each
// answers only once it has applied every revision the client has seen
// (Client.Token), so the client always reads its own writes and never goes
// back in time, but may miss other clients' latest writes. (This example's
// cell has one replica, so its master answers.)
func ExampleConfig_followerReads() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: []string{addr}, FollowerReads: true})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	h, err := c.Open(ctx, "/ls/local/config", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("v1")})
	if err != nil {
		panic(err)
	}
	st, err := h.SetContents(ctx, []byte("v2"), fsapi.AnyGeneration)
	if err != nil {
		panic(err)
	}
	data, _, err := h.GetContentsAndStat(ctx) // read-your-writes: v2, at whichever replica answers
	if err != nil {
		panic(err)
	}
	fmt.Println(string(data), c.Token() >= st.ModifiedRevision)
	// Output: v2 true
}
