package mastertest

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/master"
)

// Options configure a test cell.
type Options struct {
	N      int  // replicas (default 5)
	Inmem  bool // Raft over raft.InmemTransport instead of TCP
	Cell   string
	Logger *slog.Logger // default: discard, or stderr when HASP_TEST_LOG is set
	// Tune, if set, may change each replica's config before it starts.
	Tune func(*master.Config)
}

// Cell is N replicas in this process.
type Cell struct {
	t    testing.TB
	opts Options

	mu       sync.Mutex // protects following fields
	replicas []*Replica
}

// Replica is one member of a test cell.
type Replica struct {
	ID   string
	Dir  string
	Addr string // client address (and Raft address on TCP)

	raftAddr raft.ServerAddress
	trans    *raft.InmemTransport
	server   *master.Server // nil while crashed
}

// Server is the running replica, or nil while it is crashed.
func (r *Replica) Server() *master.Server { return r.server }

// TestConfig returns a replica config with timeouts short enough for tests.
func TestConfig() master.Config {
	cfg := master.DefaultConfig()
	cfg.HeartbeatTimeout = 150 * time.Millisecond
	cfg.ElectionTimeout = 150 * time.Millisecond
	cfg.LeaderLeaseTimeout = 75 * time.Millisecond
	cfg.SessionLease = 3 * time.Second
	return cfg
}

// New starts a cell and registers its shutdown with t.Cleanup.
func New(t testing.TB, opts Options) *Cell {
	t.Helper()
	if opts.N == 0 {
		opts.N = 5
	}
	if opts.Cell == "" {
		opts.Cell = "test"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
		if os.Getenv("HASP_TEST_LOG") != "" {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	c := &Cell{t: t, opts: opts}
	base := t.TempDir()
	for i := range opts.N {
		r := &Replica{ID: fmt.Sprintf("r%d", i+1), Dir: filepath.Join(base, fmt.Sprintf("r%d", i+1)), Addr: FreeAddr(t)}
		r.raftAddr = raft.ServerAddress(r.Addr)
		if opts.Inmem {
			r.raftAddr, r.trans = raft.NewInmemTransport("")
		}
		c.replicas = append(c.replicas, r)
	}
	c.connectAll()
	for i := range c.replicas {
		c.start(i)
	}
	t.Cleanup(c.Close)
	return c
}

func (c *Cell) connectAll() {
	for _, a := range c.replicas {
		for _, b := range c.replicas {
			if a != b && a.trans != nil && b.trans != nil {
				a.trans.Connect(b.raftAddr, b.trans)
			}
		}
	}
}

func (c *Cell) initial() map[string]string {
	m := map[string]string{}
	for _, r := range c.replicas {
		m[r.ID] = string(r.raftAddr)
	}
	return m
}

func (c *Cell) start(i int) {
	c.t.Helper()
	r := c.replicas[i]
	cfg := TestConfig()
	cfg.ID, cfg.Dir, cfg.Listen, cfg.CellName, cfg.InitialCell = r.ID, r.Dir, r.Addr, c.opts.Cell, c.initial()
	cfg.Logger = c.opts.Logger.With("replica", r.ID)
	if r.trans != nil {
		cfg.Transport = r.trans
		cfg.Advertise = r.Addr
	}
	if c.opts.Tune != nil {
		c.opts.Tune(&cfg)
	}
	var srv *master.Server
	var err error
	for try := 0; try < 50; try++ { // the port may linger briefly after a crash
		if srv, err = master.New(cfg); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("start %s: %v", r.ID, err)
	}
	c.mu.Lock()
	r.server = srv
	c.mu.Unlock()
}

// Addrs lists every replica's client address.
func (c *Cell) Addrs() []string {
	var out []string
	for _, r := range c.replicas {
		out = append(out, r.Addr)
	}
	return out
}

// Replica returns replica i (0-based).
func (c *Cell) Replica(i int) *Replica { return c.replicas[i] }

// N is the number of replicas.
func (c *Cell) N() int { return len(c.replicas) }

// WaitMaster waits up to 10 s for a replica to act as master and returns its
// index.
func (c *Cell) WaitMaster(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if i := c.MasterIndex(); i >= 0 {
			return i
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("mastertest: no master within 10s")
	return -1
}

// MasterIndex is the index of a replica acting as master, or -1.
func (c *Cell) MasterIndex() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.replicas {
		if r.server != nil && r.server.IsMaster() {
			return i
		}
	}
	return -1
}

// Crash stops replica i abruptly: no leadership transfer, no goodbye.
func (c *Cell) Crash(i int) {
	c.mu.Lock()
	srv := c.replicas[i].server
	c.replicas[i].server = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Crash()
	}
}

// Restart starts a crashed replica again on its directory and address.
func (c *Cell) Restart(i int) {
	c.t.Helper()
	r := c.replicas[i]
	if r.trans != nil {
		// A fresh transport, as a restarted process would have.
		_, r.trans = raft.NewInmemTransport(r.raftAddr)
		c.connectAll()
	}
	c.start(i)
}

// Partition cuts Raft traffic between the given groups of replica indexes;
// replicas not named form one more group. In-memory transport only.
func (c *Cell) Partition(groups ...[]int) {
	c.t.Helper()
	if !c.opts.Inmem {
		c.t.Fatal("mastertest: Partition needs Options.Inmem")
	}
	group := map[int]int{}
	for g, ids := range groups {
		for _, i := range ids {
			group[i] = g + 1
		}
	}
	for i, a := range c.replicas {
		for j, b := range c.replicas {
			if i != j && group[i] != group[j] {
				a.trans.Disconnect(b.raftAddr)
			}
		}
	}
}

// Heal restores all Raft traffic.
func (c *Cell) Heal() { c.connectAll() }

// Close stops every replica.
func (c *Cell) Close() {
	var wg sync.WaitGroup
	for i := range c.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Crash(i)
		}()
	}
	wg.Wait()
}
