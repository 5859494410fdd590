package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// benchLockRoot is the directory under which each bench lock run makes
// its own directory of lock files.
const benchLockRoot = "/ls/local/bench-lock"

// benchLockReleaseTries bounds the Release calls a worker makes after one fails,
// so that it does not go on holding the lock.
const benchLockReleaseTries = 3

// benchLockCmd is `hasp bench lock`. It shares --clients, --duration,
// --warmup and --sessions (o) with bench write and read.
func (a *app) benchLockCmd(o *benchOptions) *cobra.Command {
	var locks int
	var keep bool
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Benchmark exclusive lock cycles: Acquire then Release",
		Long: "lock runs --clients goroutines for --duration (after --warmup, not measured). Client\n" +
			"i works on lock i mod --locks: one cycle is an exclusive Acquire, waiting for the lock\n" +
			"if another client holds it, then a Release. So --locks 1 --clients 8 measures a\n" +
			"contended lock passed from client to client; --locks 64 --clients 64, uncontended\n" +
			"locks (each client has its own).\n\n" +
			"The locks are files /ls/CELL/bench-lock/RUN/lock-K, made afresh for each run (RUN\n" +
			"is the run's id) and deleted afterwards unless --keep. By default each goroutine is\n" +
			"an independent client: its own session and connection (--sessions shared makes them\n" +
			"share one); either way each goroutine has its own handle on its lock. --timeout\n" +
			"bounds each Acquire and each Release. --names and --size are ignored.\n\n" +
			"It prints progress on stderr every second (one cycle counts as one op; not with\n" +
			"--json), then cycles, errors, cycles/s and the cycle latency (Acquire call to\n" +
			"Release answer, so including any wait for the lock). For a client that waited for\n" +
			"the lock it also reports the hand-off: from the previous holder's Release call to\n" +
			"this client's Acquire returning, the time the lock passes from one owner to the\n" +
			"next. It fails only if no cycle succeeded.",
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			lo := lockBenchOptions{benchOptions: *o, locks: locks, keep: keep}
			lo.workload = "lock"
			return a.benchLock(ctx, lo)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&locks, "locks", 1, "locks (files) the clients share: client i uses lock i mod --locks")
	f.BoolVar(&keep, "keep", false, "keep the run's lock files")
	return cmd
}

// lockBenchOptions are bench lock's flags.
type lockBenchOptions struct {
	benchOptions
	locks int
	keep  bool
}

func (o *lockBenchOptions) validate() error {
	if o.locks < 1 {
		return usagef("--locks %d: must be at least 1", o.locks)
	}
	return o.benchOptions.validate()
}

func (a *app) benchLock(ctx context.Context, o lockBenchOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	clients, err := a.dialClients(ctx, o.benchOptions)
	if err != nil {
		closeClients(clients)
		return err
	}
	dir := fmt.Sprintf("%s/%s-%04x", benchLockRoot, time.Now().UTC().Format("20060102-150405"), rand.IntN(1<<16))
	res, err := a.runBenchLock(ctx, o, clients, dir)
	// Ending the sessions frees any lock still held (a Release that failed,
	// an abandoned Acquire being withdrawn), so the files can go.
	closeClients(clients)
	if !o.keep {
		// Also after a failed setup or an interrupted run: whatever exists.
		a.removeBenchLocks(ctx, dir, o.locks)
	}
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	return a.reportBenchLock(o, dir, res)
}

// runBenchLock makes the locks, gives each goroutine its handle and runs
// the load.
func (a *app) runBenchLock(ctx context.Context, o lockBenchOptions, clients []*cellclient.Client,
	dir string) (benchLockResult, error) {
	if err := a.createBenchLocks(ctx, clients[0], dir, o.locks); err != nil {
		return benchLockResult{}, err
	}
	handles, err := a.openBenchLockHandles(ctx, clients, dir, o)
	if err != nil {
		return benchLockResult{}, err
	}
	return a.benchLockLoad(ctx, o, handles), nil
}

func benchLockName(dir string, k int) string { return fmt.Sprintf("%s/lock-%d", dir, k) }

// createBenchLocks makes the run's directory and its n lock files with c.
func (a *app) createBenchLocks(ctx context.Context, c *cellclient.Client, dir string, n int) error {
	for _, d := range []string{benchLockRoot, dir} {
		octx, cancel := context.WithTimeout(ctx, a.timeout)
		_, err := c.Open(octx, d, &cellclient.OpenOptions{Create: fsapi.CreateMay, Directory: true})
		cancel()
		if err != nil {
			return err
		}
	}
	return parallel(n, setupWidth, func(k int) error {
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		_, err := c.Open(ctx, benchLockName(dir, k), &cellclient.OpenOptions{Create: fsapi.CreateMust})
		return err
	})
}

// removeBenchLocks deletes the run's n lock files (those that exist) and
// its directory with a session of its own, best effort: a failure is
// reported on stderr. An interrupt does not stop it; --timeout bounds
// each step.
func (a *app) removeBenchLocks(ctx context.Context, dir string, n int) {
	ctx = context.WithoutCancel(ctx)
	step := func(fn func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		if err := fn(ctx); err != nil && !errors.Is(err, fsapi.ErrNotExist) {
			return err
		}
		return nil
	}
	var c *cellclient.Client
	err := step(func(ctx context.Context) (err error) {
		c, err = a.dial(ctx, "hasp-bench")
		return err
	})
	if err == nil {
		defer c.Close()
		deleteNode := func(name string) func(context.Context) error {
			return func(ctx context.Context) error {
				h, err := c.Open(ctx, name, nil)
				if err != nil {
					return err
				}
				return h.Delete(ctx)
			}
		}
		err = parallel(n, setupWidth, func(k int) error { return step(deleteNode(benchLockName(dir, k))) })
		if err == nil {
			err = step(deleteNode(dir))
		}
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "hasp: bench: could not remove %s: %s\n", dir, oneLine(err))
	}
}

// openBenchLockHandles gives goroutine i a handle of its own on lock i mod
// --locks, opened with its client.
func (a *app) openBenchLockHandles(ctx context.Context, clients []*cellclient.Client, dir string,
	o lockBenchOptions) ([]*cellclient.Handle, error) {
	hs := make([]*cellclient.Handle, o.clients)
	err := parallel(o.clients, setupWidth, func(i int) error {
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		h, err := clients[i%len(clients)].Open(ctx, benchLockName(dir, i%o.locks), nil)
		hs[i] = h
		return err
	})
	return hs, err
}

// benchLockSlot is what the workers on one lock share: when its last holder
// started its Release, for the hand-off latency. Holders alternate on an
// exclusive lock, so the holder that writes relStart is the one whose
// Release let the next Acquire through.
type benchLockSlot struct {
	mu       sync.Mutex // protects relStart
	relStart time.Time
}

// benchLockLat are one worker's latencies inside the window.
type benchLockLat struct {
	cycle, acquire, release, handoff []time.Duration
}

// benchLockWorker is one bench lock goroutine.
type benchLockWorker struct {
	h       *cellclient.Handle
	slot    *benchLockSlot
	timeout time.Duration
}

// run does cycles until the window ends (or ctx does). A cycle is counted
// if it starts and ends inside the window; a hand-off, if the Acquire
// returns inside it.
func (w *benchLockWorker) run(ctx context.Context, win window, rec *recorder) benchLockLat {
	var l benchLockLat
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(win.to) {
			break
		}
		err := w.acquire(ctx)
		t1 := time.Now()
		in := !t0.Before(win.from)
		if err != nil {
			if in && !t1.After(win.to) {
				rec.fail(err)
			}
			continue
		}
		w.slot.mu.Lock()
		prev := w.slot.relStart
		t2 := time.Now()
		w.slot.relStart = t2
		w.slot.mu.Unlock()
		// Waited for a holder whose Release began after this Acquire did.
		if t0.Before(prev) && !t1.Before(win.from) && !t1.After(win.to) {
			l.handoff = append(l.handoff, t1.Sub(prev))
		}
		err = w.release(ctx)
		t3 := time.Now()
		if !in || t3.After(win.to) {
			continue
		}
		if err != nil {
			rec.fail(err)
			continue
		}
		l.cycle = append(l.cycle, t3.Sub(t0))
		l.acquire = append(l.acquire, t1.Sub(t0))
		l.release = append(l.release, t3.Sub(t2))
		rec.ops.Add(1)
	}
	return l
}

// acquire and release are not cut short when ctx ends (the run's end
// waits for every cycle under way); --timeout bounds them.
func (w *benchLockWorker) acquire(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	return w.h.Acquire(ctx, cellclient.Exclusive)
}

// release gives the lock up, trying again (up to benchLockReleaseTries in all) if
// a Release fails with the lock perhaps still held. It returns the first
// error: a cycle whose Release failed once counts as an error even if a
// retry released the lock.
func (w *benchLockWorker) release(ctx context.Context) error {
	var first error
	for range benchLockReleaseTries {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
		err := w.h.Release(rctx)
		cancel()
		if first == nil {
			first = err
		}
		if err == nil || errors.Is(err, fsapi.ErrNotHeld) || errors.Is(err, fsapi.ErrHandleClosed) {
			break
		}
	}
	return first
}

// benchLockResult is what a bench lock run measured.
type benchLockResult struct {
	benchLockLat // each sorted
	errs         int64
	first        []string
	elapsed      time.Duration
}

func (a *app) benchLockLoad(ctx context.Context, o lockBenchOptions, handles []*cellclient.Handle) benchLockResult {
	slots := make([]*benchLockSlot, o.locks)
	for k := range slots {
		slots[k] = &benchLockSlot{}
	}
	start := time.Now()
	win := window{from: start.Add(o.warmup), to: start.Add(o.warmup + o.duration)}
	rec := &recorder{}
	stop := a.progress("lock", win, rec)
	lats := make([]benchLockLat, o.clients)
	var wg sync.WaitGroup
	for i := range o.clients {
		w := &benchLockWorker{h: handles[i], slot: slots[i%o.locks], timeout: a.timeout}
		wg.Go(func() { lats[i] = w.run(ctx, win, rec) })
	}
	wg.Wait()
	stop()
	res := benchLockResult{errs: rec.errs.Load(), first: rec.first, elapsed: o.duration}
	if ctx.Err() != nil { // interrupted
		res.elapsed = max(0, min(o.duration, time.Since(win.from)))
	}
	for _, l := range lats {
		res.cycle = append(res.cycle, l.cycle...)
		res.acquire = append(res.acquire, l.acquire...)
		res.release = append(res.release, l.release...)
		res.handoff = append(res.handoff, l.handoff...)
	}
	for _, s := range [][]time.Duration{res.cycle, res.acquire, res.release, res.handoff} {
		slices.Sort(s)
	}
	return res
}

// benchLockSummary is bench lock's result, as printed with --json.
type benchLockSummary struct {
	Workload     string   `json:"workload"`
	Locks        int      `json:"locks"`
	Clients      int      `json:"clients"`
	Sessions     string   `json:"sessions"`
	Dir          string   `json:"dir"`
	Duration     float64  `json:"duration_s"`
	Cycles       int      `json:"cycles"`
	Errors       int64    `json:"errors"`
	CyclesPerSec float64  `json:"cycles_per_sec"`
	MeanMs       float64  `json:"mean_ms"`
	P50Ms        float64  `json:"p50_ms"`
	P90Ms        float64  `json:"p90_ms"`
	P99Ms        float64  `json:"p99_ms"`
	MaxMs        float64  `json:"max_ms"`
	AcquireP50Ms float64  `json:"acquire_p50_ms"`
	AcquireP99Ms float64  `json:"acquire_p99_ms"`
	ReleaseP50Ms float64  `json:"release_p50_ms"`
	ReleaseP99Ms float64  `json:"release_p99_ms"`
	Handoffs     int      `json:"handoffs"`
	HandoffP50Ms float64  `json:"handoff_p50_ms"`
	HandoffP99Ms float64  `json:"handoff_p99_ms"`
	FirstErrors  []string `json:"first_errors,omitempty"`
}

func summarizeBenchLock(o lockBenchOptions, dir string, r benchLockResult) benchLockSummary {
	s := benchLockSummary{Workload: "lock", Locks: o.locks, Clients: o.clients, Sessions: o.sessions, Dir: dir,
		Duration: r.elapsed.Seconds(), Cycles: len(r.cycle), Errors: r.errs, Handoffs: len(r.handoff),
		FirstErrors: r.first}
	if s.Duration > 0 {
		s.CyclesPerSec = float64(s.Cycles) / s.Duration
	}
	if len(r.cycle) > 0 {
		var sum time.Duration
		for _, d := range r.cycle {
			sum += d
		}
		s.MeanMs = ms(sum / time.Duration(len(r.cycle)))
		s.P50Ms, s.P90Ms, s.P99Ms = ms(quantile(r.cycle, 0.5)), ms(quantile(r.cycle, 0.9)), ms(quantile(r.cycle, 0.99))
		s.MaxMs = ms(r.cycle[len(r.cycle)-1])
		s.AcquireP50Ms, s.AcquireP99Ms = ms(quantile(r.acquire, 0.5)), ms(quantile(r.acquire, 0.99))
		s.ReleaseP50Ms, s.ReleaseP99Ms = ms(quantile(r.release, 0.5)), ms(quantile(r.release, 0.99))
	}
	if len(r.handoff) > 0 {
		s.HandoffP50Ms, s.HandoffP99Ms = ms(quantile(r.handoff, 0.5)), ms(quantile(r.handoff, 0.99))
	}
	return s
}

// reportBenchLock prints the summary (and the first errors on stderr). A run
// fails only if no cycle succeeded.
func (a *app) reportBenchLock(o lockBenchOptions, dir string, r benchLockResult) error {
	s := summarizeBenchLock(o, dir, r)
	for _, e := range s.FirstErrors {
		fmt.Fprintf(a.stderr, "hasp: bench: error: %s\n", e)
	}
	var err error
	if a.json {
		err = a.emit(s)
	} else {
		err = writeBenchLock(a.stdout, s)
	}
	if err != nil {
		return err
	}
	if s.Cycles == 0 {
		return errors.New("bench: no lock cycle succeeded")
	}
	return nil
}

func writeBenchLock(w io.Writer, s benchLockSummary) error {
	locks := "locks"
	if s.Locks == 1 {
		locks = "lock"
	}
	fmt.Fprintf(w, "bench lock: %d clients, %s sessions, %d %s, %.1fs measured\n",
		s.Clients, s.Sessions, s.Locks, locks, s.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "cycles\t%d\n", s.Cycles)
	fmt.Fprintf(tw, "errors\t%d\n", s.Errors)
	fmt.Fprintf(tw, "cycles/s\t%.1f\n", s.CyclesPerSec)
	fmt.Fprintf(tw, "latency\tp50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms\n",
		s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs, s.MeanMs)
	fmt.Fprintf(tw, "acquire\tp50 %.2fms  p99 %.2fms\n", s.AcquireP50Ms, s.AcquireP99Ms)
	fmt.Fprintf(tw, "release\tp50 %.2fms  p99 %.2fms\n", s.ReleaseP50Ms, s.ReleaseP99Ms)
	if s.Handoffs > 0 {
		fmt.Fprintf(tw, "hand-off\tp50 %.2fms  p99 %.2fms  (%d hand-offs)\n", s.HandoffP50Ms, s.HandoffP99Ms, s.Handoffs)
	}
	return tw.Flush()
}
