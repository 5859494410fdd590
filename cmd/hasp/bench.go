package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// benchDir is where bench keeps its pool of files.
const benchDir = "/ls/local/bench"

// setupWidth bounds the concurrent calls bench makes while setting up.
const setupWidth = 32

// benchOptions are bench's flags.
type benchOptions struct {
	workload string // "write" or "read"
	clients  int
	duration time.Duration
	warmup   time.Duration
	names    int
	size     int
	sessions string // "per-client" or "shared"
}

func (a *app) benchCmd() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench write|read|failover",
		Short: "Generate load on the cell and report throughput and latency",
		Long: "bench runs --clients goroutines for --duration (after --warmup, not measured), each\n" +
			"doing one operation after another on a random file of a pool of --names files of\n" +
			"--size bytes under /ls/CELL/bench/, which bench creates first:\n\n" +
			"  write  SetContents of --size bytes\n" +
			"  read   GetContentsAndStat\n\n" +
			"By default each goroutine has its own client: its own session and connection;\n" +
			"--sessions shared makes them share one. --timeout bounds each operation.\n" +
			"It prints progress on stderr every second (not with --json), then ops, errors,\n" +
			"ops/s and latency percentiles. It fails only if no operation succeeded.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return usagef("bench needs a workload: write or read") },
	}
	pf := cmd.PersistentFlags()
	pf.IntVar(&o.clients, "clients", 1, "concurrent clients (goroutines)")
	pf.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	pf.DurationVar(&o.warmup, "warmup", time.Second, "load before measuring, not counted")
	pf.IntVar(&o.names, "names", 1000, "files in the pool")
	pf.IntVar(&o.size, "size", 100, "file size in bytes")
	pf.StringVar(&o.sessions, "sessions", "per-client", "per-client (a client each) or shared (one client)")
	cmd.AddCommand(a.benchFailoverCmd())
	cmd.AddCommand(a.benchLockCmd(o))
	cmd.AddCommand(a.benchEventsCmd(o))
	cmd.AddCommand(a.benchInvalCmd(o))
	cmd.AddCommand(a.benchSessionsCmd(o))
	cmd.AddCommand(a.benchFloorCmd(o))
	for _, w := range []string{"write", "read"} {
		cmd.AddCommand(&cobra.Command{
			Use:   w,
			Short: "Benchmark " + map[string]string{"write": "SetContents", "read": "GetContentsAndStat"}[w],
			Args:  cobra.NoArgs,
			RunE: a.action(func(ctx context.Context, _ []string) error {
				o.workload = w
				return a.bench(ctx, *o)
			}),
		})
	}
	a.extendBenchRead(cmd, o) // --cache, --timing: benchreadcache.go
	return cmd
}

func (o *benchOptions) validate() error {
	switch {
	case o.clients < 1:
		return usagef("--clients %d: must be at least 1", o.clients)
	case o.duration <= 0:
		return usagef("--duration %v: must be positive", o.duration)
	case o.warmup < 0:
		return usagef("--warmup %v: must not be negative", o.warmup)
	case o.names < 1:
		return usagef("--names %d: must be at least 1", o.names)
	case o.size < 0:
		return usagef("--size %d: must not be negative", o.size)
	case o.sessions != "per-client" && o.sessions != "shared":
		return usagef("--sessions %q: want per-client or shared", o.sessions)
	}
	return nil
}

func (a *app) bench(ctx context.Context, o benchOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	clients, err := a.dialClients(ctx, o)
	defer closeClients(clients)
	if err != nil {
		return err
	}
	pools, err := a.preparePools(ctx, clients, o)
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	res := a.load(ctx, o, pools)
	return a.report(o, res)
}

// dialClients makes one client per goroutine, or one shared client.
func (a *app) dialClients(ctx context.Context, o benchOptions) ([]*cellclient.Client, error) {
	n := o.clients
	if o.sessions == "shared" {
		n = 1
	}
	clients := make([]*cellclient.Client, n)
	err := parallel(n, setupWidth, func(i int) error {
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		c, err := a.dial(ctx, "hasp-bench")
		clients[i] = c
		return err
	})
	return clients, err
}

func closeClients(clients []*cellclient.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c != nil {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
}

// preparePools creates the pool of files with the first client and opens
// it with every other one: pools[i] are client i's handles.
func (a *app) preparePools(ctx context.Context, clients []*cellclient.Client, o benchOptions) ([][]*cellclient.Handle, error) {
	first, err := a.createPool(ctx, clients[0], o)
	if err != nil {
		return nil, err
	}
	pools := [][]*cellclient.Handle{first}
	for _, c := range clients[1:] {
		hs, err := a.openPool(ctx, c, o.names, nil, nil)
		if err != nil {
			return nil, err
		}
		pools = append(pools, hs)
	}
	return pools, nil
}

// createPool makes the bench directory and its files. For reads, existing
// files are rewritten to --size bytes; writes overwrite them anyway.
func (a *app) createPool(ctx context.Context, c *cellclient.Client, o benchOptions) ([]*cellclient.Handle, error) {
	octx, cancel := context.WithTimeout(ctx, a.timeout)
	_, err := c.Open(octx, benchDir, &cellclient.OpenOptions{Create: fsapi.CreateMay, Directory: true})
	cancel()
	if err != nil {
		return nil, err
	}
	data := make([]byte, o.size)
	opts := &cellclient.OpenOptions{Create: fsapi.CreateMay, Contents: data}
	return a.openPool(ctx, c, o.names, opts, func(ctx context.Context, h *cellclient.Handle) error {
		if h.Created() || o.workload != "read" {
			return nil
		}
		_, err := h.SetContents(ctx, data, fsapi.AnyGeneration)
		return err
	})
}

// openPool opens the pool's n files with c and opts, then runs then (if
// not nil) on each handle.
func (a *app) openPool(ctx context.Context, c *cellclient.Client, n int, opts *cellclient.OpenOptions,
	then func(context.Context, *cellclient.Handle) error) ([]*cellclient.Handle, error) {
	hs := make([]*cellclient.Handle, n)
	err := parallel(n, setupWidth, func(i int) error {
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		h, err := c.Open(ctx, poolName(i), opts)
		if err != nil {
			return err
		}
		hs[i] = h
		if then != nil {
			return then(ctx, h)
		}
		return nil
	})
	return hs, err
}

func poolName(i int) string { return fmt.Sprintf("%s/f%05d", benchDir, i) }

// parallel runs fn(0), ..., fn(n-1) on up to width goroutines. It stops
// starting calls after the first error, which it returns.
func parallel(n, width int, fn func(i int) error) error {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for range min(n, width) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
