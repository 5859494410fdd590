package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cache"
	"github.com/haspcell/hasp/cellclient"
)

// readCacheOptions are the flags extendBenchRead gives bench read.
type readCacheOptions struct {
	cache  string // "on" or "off"
	timing string // "op" or "batch"
	batch  int    // reads per timed batch (--timing batch)
	// follower: Config.FollowerReads; cacheSet: --cache was given.
	follower, cacheSet bool
}

func (ro *readCacheOptions) validate() error {
	switch {
	case ro.follower && ro.cacheSet && ro.cache == "on":
		return usagef("--follower: follower reads do not use the cache; drop --cache on")
	case ro.cache != "on" && ro.cache != "off":
		return usagef("--cache %q: want on or off", ro.cache)
	case ro.timing != "op" && ro.timing != "batch":
		return usagef("--timing %q: want op or batch", ro.timing)
	case ro.batch < 1:
		return usagef("--batch %d: must be at least 1", ro.batch)
	}
	return nil
}

// extendBenchRead gives bench's read subcommand (made in benchCmd) the
// flags --cache, --timing and --batch, and runs it with them.
func (a *app) extendBenchRead(bench *cobra.Command, o *benchOptions) {
	var read *cobra.Command
	for _, c := range bench.Commands() {
		if c.Name() == "read" {
			read = c
		}
	}
	if read == nil {
		panic("bench: no read subcommand to extend")
	}
	ro := &readCacheOptions{}
	read.Long = "read runs --clients goroutines, each calling GetContentsAndStat on a random file of\n" +
		"the pool, through a handle opened once (see bench --help).\n\n" +
		"With --cache on (the default) each client has the consistent client cache: after a\n" +
		"file's first read its reads are served from the cache until the file changes, so\n" +
		"this measures cached reads (bench read changes nothing). --cache off sends every\n" +
		"read to the master. --sessions shared makes the goroutines share one client, and so\n" +
		"one cache.\n\n" +
		"--timing op times each read (two clock readings, a --timeout context and a latency\n" +
		"sample per read). At a million reads a second that costs as much as a cached read\n" +
		"itself, so --timing batch times batches of --batch reads instead: one clock reading\n" +
		"and one --timeout context per batch (--timeout then bounds the batch), ops/s from\n" +
		"the reads of batches inside the window, and the latency percentiles are of the mean\n" +
		"read time of each batch.\n\n" +
		"It reports the clients' cache hits and misses over the whole run (set-up and warm-up\n" +
		"included) and the load average at the start and the end.\n\n" +
		"--follower gives every client follower reads (no cache): each read goes to a replica\n" +
		"other than the master, which answers from its own state once it has applied the\n" +
		"client's token (read-your-writes and monotonic reads, not linearizable). It reports\n" +
		"how many reads the read replicas answered and how many went on to the master."
	f := read.Flags()
	f.StringVar(&ro.cache, "cache", "on", "the client cache: on or off")
	f.StringVar(&ro.timing, "timing", "op", "op (time each read) or batch (time batches of --batch reads)")
	f.IntVar(&ro.batch, "batch", 1000, "reads per timed batch with --timing batch")
	f.BoolVar(&ro.follower, "follower", false, "follower reads: replicas other than the master answer (implies no cache)")
	read.RunE = a.action(func(ctx context.Context, _ []string) error {
		o.workload = "read"
		ro.cacheSet = f.Changed("cache")
		return a.benchRead(ctx, *o, *ro)
	})
}

func (a *app) benchRead(ctx context.Context, o benchOptions, ro readCacheOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := ro.validate(); err != nil {
		return err
	}
	load0 := loadAvg()
	n := o.clients
	if o.sessions == "shared" {
		n = 1
	}
	if ro.follower {
		ro.cache = "off"
	}
	clients, err := a.dialMany(ctx, n, setupWidth, func(cfg *cellclient.Config) {
		cfg.DisableCache, cfg.FollowerReads = ro.cache == "off", ro.follower
	})
	defer closeClients(clients)
	if err != nil {
		return err
	}
	pools, err := a.preparePools(ctx, clients, o)
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	var s readCacheSummary
	if ro.timing == "op" {
		res := a.load(ctx, o, pools)
		s.benchSummary = summarizeBench(o, res)
	} else {
		s.benchSummary = a.batchLoad(ctx, o, ro.batch, pools)
	}
	s.Cache, s.Timing, s.LoadStart, s.LoadEnd = ro.cache, ro.timing, load0, loadAvg()
	if ro.timing == "batch" {
		s.Batch = ro.batch
	}
	var st cache.Stats
	for _, c := range clients {
		cs := c.CacheStats()
		st.Hits += cs.Hits
		st.Misses += cs.Misses
		st.Invalidations += cs.Invalidations
	}
	s.CacheHits, s.CacheMisses, s.CacheInvalidations = st.Hits, st.Misses, st.Invalidations
	if ro.follower {
		s.Follower = true
		for _, c := range clients {
			fs := c.FollowerStats()
			s.FollowerReplica += fs.Replica
			s.FollowerMaster += fs.Master
		}
	}
	return a.reportRead(s)
}

// dialMany makes n clients, up to width at a time, each with the cell's
// addresses and the changes mod makes to the configuration. On an error
// the clients made so far are returned with it.
func (a *app) dialMany(ctx context.Context, n, width int, mod func(*cellclient.Config)) ([]*cellclient.Client, error) {
	clients := make([]*cellclient.Client, n)
	err := parallel(n, width, func(i int) error {
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		cfg := cellclient.Config{Addrs: a.addrs, ClientName: "hasp-bench"}
		if mod != nil {
			mod(&cfg)
		}
		c, err := cellclient.Dial(ctx, cfg)
		if err != nil {
			return fmt.Errorf("cannot reach a master at %s: %w", strings.Join(a.addrs, ","), err)
		}
		clients[i] = c
		return nil
	})
	return clients, err
}

// batchLoad is load with batch timing: each worker times batches of batch
// reads and counts a batch's reads if the batch starts and ends inside the
// window. Its latencies are each batch's mean read time.
func (a *app) batchLoad(ctx context.Context, o benchOptions, batch int, pools [][]*cellclient.Handle) benchSummary {
	start := time.Now()
	win := window{from: start.Add(o.warmup), to: start.Add(o.warmup + o.duration)}
	rec := &recorder{}
	stop := a.progress(o.workload, win, rec)
	lats := make([][]time.Duration, o.clients)
	ops := make([]int, o.clients)
	var wg sync.WaitGroup
	for i := range o.clients {
		handles := pools[i%len(pools)]
		wg.Go(func() { lats[i], ops[i] = a.readBatches(ctx, handles, batch, win, rec) })
	}
	wg.Wait()
	stop()
	elapsed := o.duration
	if ctx.Err() != nil { // interrupted
		elapsed = max(0, min(o.duration, time.Since(win.from)))
	}
	lat := slices.Concat(lats...)
	slices.Sort(lat)
	s := benchSummary{Workload: o.workload, Clients: o.clients, Sessions: o.sessions, Names: o.names, Size: o.size,
		Duration: elapsed.Seconds(), Errors: rec.errs.Load(), FirstErrors: rec.first}
	for _, n := range ops {
		s.Ops += n
	}
	if s.Duration > 0 {
		s.OpsPerSec = float64(s.Ops) / s.Duration
	}
	if len(lat) > 0 {
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		s.MeanMs = ms(sum / time.Duration(len(lat)))
		s.P50Ms, s.P90Ms, s.P99Ms = ms(quantile(lat, 0.5)), ms(quantile(lat, 0.9)), ms(quantile(lat, 0.99))
		s.MaxMs = ms(lat[len(lat)-1])
	}
	return s
}

// readBatches is one batch-timed worker: it returns the mean read time of
// each batch inside the window and the reads that succeeded in them.
func (a *app) readBatches(ctx context.Context, handles []*cellclient.Handle, batch int, win window,
	rec *recorder) (lat []time.Duration, ops int) {
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(win.to) {
			break
		}
		// Not cut short when ctx ends; --timeout bounds the batch.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
		ok := 0
		var errs []error
		for range batch {
			h := handles[rand.IntN(len(handles))]
			if _, _, err := h.GetContentsAndStat(bctx); err != nil {
				errs = append(errs, err)
			} else {
				ok++
			}
		}
		cancel()
		t1 := time.Now()
		if t0.Before(win.from) || t1.After(win.to) {
			continue
		}
		for _, err := range errs {
			rec.fail(err)
		}
		if ok > 0 {
			lat = append(lat, t1.Sub(t0)/time.Duration(batch))
			ops += ok
			rec.ops.Add(int64(ok))
		}
	}
	return lat, ops
}

// readCacheSummary is bench read's result, as printed with --json.
type readCacheSummary struct {
	benchSummary
	Cache              string  `json:"cache"`
	Timing             string  `json:"timing"`
	Batch              int     `json:"batch,omitempty"`
	CacheHits          uint64  `json:"cache_hits"`
	CacheMisses        uint64  `json:"cache_misses"`
	CacheInvalidations uint64  `json:"cache_invalidations"`
	LoadStart          float64 `json:"loadavg_start"`
	LoadEnd            float64 `json:"loadavg_end"`
	// With --follower: reads answered by read replicas and by the master
	// over the whole run (set-up included).
	Follower        bool   `json:"follower,omitempty"`
	FollowerReplica uint64 `json:"follower_replica_reads"`
	FollowerMaster  uint64 `json:"follower_master_reads"`
}

func (a *app) reportRead(s readCacheSummary) error {
	for _, e := range s.FirstErrors {
		fmt.Fprintf(a.stderr, "hasp: bench: error: %s\n", e)
	}
	var err error
	if a.json {
		err = a.emit(s)
	} else {
		err = writeBenchRead(a.stdout, s)
	}
	if err != nil {
		return err
	}
	if s.Ops == 0 {
		return errors.New("bench: no operation succeeded")
	}
	return nil
}

func writeBenchRead(w io.Writer, s readCacheSummary) error {
	fmt.Fprintf(w, "bench %s: %d clients, %s sessions, %d files of %d bytes, %.1fs measured\n",
		s.Workload, s.Clients, s.Sessions, s.Names, s.Size, s.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ops\t%d\n", s.Ops)
	fmt.Fprintf(tw, "errors\t%d\n", s.Errors)
	fmt.Fprintf(tw, "ops/s\t%.1f\n", s.OpsPerSec)
	fmt.Fprintf(tw, "latency\tp50 %s  p90 %s  p99 %s  max %s  mean %s\n",
		msText(s.P50Ms), msText(s.P90Ms), msText(s.P99Ms), msText(s.MaxMs), msText(s.MeanMs))
	timing := "each read timed"
	if s.Timing == "batch" {
		timing = fmt.Sprintf("batches of %d reads timed; latency is a batch's mean", s.Batch)
	}
	fmt.Fprintf(tw, "timing\t%s\n", timing)
	fmt.Fprintf(tw, "cache\t%s, %d hits, %d misses, %d invalidations\n", s.Cache, s.CacheHits, s.CacheMisses,
		s.CacheInvalidations)
	if s.Follower {
		fmt.Fprintf(tw, "follower\t%d reads answered by read replicas, %d by the master\n", s.FollowerReplica, s.FollowerMaster)
	}
	fmt.Fprintf(tw, "load\t%.2f at start, %.2f at end\n", s.LoadStart, s.LoadEnd)
	return tw.Flush()
}

// msText shows a time in milliseconds, or in microseconds below 0.1 ms.
func msText(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.2fµs", v*1000)
	}
	return fmt.Sprintf("%.2fms", v)
}

// loadAvg is the machine's one-minute load average (0 if unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscanf(string(b), "%f", &l)
	return l
}
