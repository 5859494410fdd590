package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// benchEventsRoot is the directory under which each bench events run makes
// its file.
const benchEventsRoot = "/ls/local/bench-events"

// benchEventsDrain is how long bench events waits, after the last write,
// for the watchers to receive its event.
const benchEventsDrain = 5 * time.Second

// benchEventsCmd is `hasp bench events`. It shares --duration, --warmup
// and --size (o) with the other workloads.
func (a *app) benchEventsCmd(o *benchOptions) *cobra.Command {
	var watchers int
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Benchmark change-event latency: watchers on one file, one writer",
		Long: "events makes a file /ls/CELL/bench-events/RUN (deleted afterwards), has --watchers\n" +
			"clients (each its own session and connection) Watch it, and one more client write\n" +
			"--size bytes to it every --interval for --duration (after --warmup, not measured),\n" +
			"one write at a time. Each event's latency is from the start of the write that made\n" +
			"it to a watcher receiving it, so it includes the write's commit; every watcher must\n" +
			"receive every write's event exactly once, in order (missing, repeated or out-of-order\n" +
			"events count as errors). It prints the event latency over all watchers and events,\n" +
			"and the write latency. --timeout bounds each write. --clients, --names and\n" +
			"--sessions are ignored. It fails if no event arrived.",
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			eo := eventsBenchOptions{benchOptions: *o, watchers: watchers, interval: interval}
			eo.workload = "events"
			return a.benchEvents(ctx, eo)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&watchers, "watchers", 50, "watching clients, each with its own session")
	f.DurationVar(&interval, "interval", 10*time.Millisecond, "time between the starts of two writes")
	return cmd
}

// eventsBenchOptions are bench events' flags.
type eventsBenchOptions struct {
	benchOptions
	watchers int
	interval time.Duration
}

func (o *eventsBenchOptions) validate() error {
	switch {
	case o.watchers < 1:
		return usagef("--watchers %d: must be at least 1", o.watchers)
	case o.interval <= 0:
		return usagef("--interval %v: must be positive", o.interval)
	}
	o.clients = 1 // the writer; validated like the other workloads' options
	return o.benchOptions.validate()
}

func (a *app) benchEvents(ctx context.Context, o eventsBenchOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	clients, err := a.dialClients(ctx, benchOptions{clients: o.watchers + 1, sessions: "per-client"})
	defer closeClients(clients)
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	writer, watchers := clients[0], clients[1:]
	name := fmt.Sprintf("%s/%s-%04x", benchEventsRoot, time.Now().UTC().Format("20060102-150405"), rand.IntN(1<<16))
	h, err := a.createBenchEventsFile(ctx, writer, name, o.size)
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	defer a.removeBenchEventsFile(ctx, h)
	res, err := a.runBenchEvents(ctx, o, h, watchers)
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	return a.reportBenchEvents(o, name, res)
}

func (a *app) createBenchEventsFile(ctx context.Context, c *cellclient.Client, name string, size int) (*cellclient.Handle, error) {
	octx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if _, err := c.Open(octx, benchEventsRoot, &cellclient.OpenOptions{Create: fsapi.CreateMay, Directory: true}); err != nil {
		return nil, err
	}
	return c.Open(octx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: make([]byte, size)})
}

// removeBenchEventsFile deletes the run's file, best effort.
func (a *app) removeBenchEventsFile(ctx context.Context, h *cellclient.Handle) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	defer cancel()
	if err := h.Delete(ctx); err != nil {
		fmt.Fprintf(a.stderr, "hasp: bench: could not delete %s: %s\n", h.Name(), oneLine(err))
	}
}

// eventClock maps a content generation to the start of the write that made
// it.
type eventClock struct {
	mu     sync.Mutex
	starts map[uint64]time.Time
}

func (c *eventClock) set(gen uint64, t time.Time) {
	c.mu.Lock()
	c.starts[gen] = t
	c.mu.Unlock()
}

func (c *eventClock) get(gen uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.starts[gen]
	return t, ok
}

// benchEventsResult is what a run measured.
type benchEventsResult struct {
	lat      []time.Duration // event latencies in the window, sorted
	write    []time.Duration // write latencies in the window, sorted
	writes   int             // writes that started in the window
	expected int             // writes in the window × watchers
	missing  int
	errs     int64
	first    []string
	elapsed  time.Duration
}

// runBenchEvents starts the watches, then writes every interval, and
// gathers what each watcher received.
func (a *app) runBenchEvents(ctx context.Context, o eventsBenchOptions, h *cellclient.Handle,
	watchers []*cellclient.Client) (benchEventsResult, error) {
	// The file was just created, with contents: generation 1 at revision
	// Instance. (Not read: a read would make the writer cache the file,
	// and then every write would first wait for the writer's own
	// invalidation to be acknowledged.)
	st := fsapi.Stat{ContentGeneration: 1, ModifiedRevision: h.Instance()}
	wctx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	chans := make([]<-chan cellclient.WatchEvent, len(watchers))
	err := parallel(len(watchers), setupWidth, func(i int) error {
		ch, err := watchers[i].Watch(wctx, h.Name(), cellclient.WatchOptions{FromRevision: st.ModifiedRevision + 1})
		chans[i] = ch
		return err
	})
	if err != nil {
		return benchEventsResult{}, err
	}

	clock := &eventClock{starts: map[uint64]time.Time{}}
	rec := &recorder{}
	start := time.Now()
	win := window{from: start.Add(o.warmup), to: start.Add(o.warmup + o.duration)}
	stop := a.progress("events", win, rec)
	// Generations written inside the window: [firstGen, lastGen].
	var firstGen, lastGen uint64
	lats := make([][]time.Duration, len(watchers))
	missing := make([]int, len(watchers))
	var wg sync.WaitGroup
	// When the writer is done, finalGen is the last generation written
	// and writerDone is closed.
	var finalGen atomic.Uint64
	writerDone := make(chan struct{})
	for i, ch := range chans {
		wg.Go(func() {
			lats[i], missing[i] = watchEvents(ch, clock, win, st.ContentGeneration, writerDone, &finalGen, rec)
		})
	}

	var writeLat []time.Duration
	gen := st.ContentGeneration
	buf := make([]byte, o.size)
	tick := time.NewTicker(o.interval)
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(win.to) {
			break
		}
		gen++
		clock.set(gen, t0)
		if len(buf) >= 8 {
			copy(buf, fmt.Appendf(nil, "%08x", gen%(1<<32)))
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
		got, err := h.SetContents(wctx, buf, fsapi.AnyGeneration)
		cancel()
		if err != nil || got.ContentGeneration != gen {
			// The generations no longer say which write an event is for.
			stop()
			tick.Stop()
			stopWatches()
			wg.Wait()
			if err == nil {
				err = fmt.Errorf("write made generation %d, expected %d: is another client writing %s?",
					got.ContentGeneration, gen, h.Name())
			}
			return benchEventsResult{}, err
		}
		if !t0.Before(win.from) {
			if firstGen == 0 {
				firstGen = gen
			}
			lastGen = gen
			writeLat = append(writeLat, time.Since(t0))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	tick.Stop()
	finalGen.Store(gen)
	close(writerDone)
	// Each watcher stops at the last generation's event, or after the drain.
	drain := time.AfterFunc(benchEventsDrain, stopWatches)
	wg.Wait()
	drain.Stop()
	stop()

	res := benchEventsResult{write: writeLat, errs: rec.errs.Load(), first: rec.first, elapsed: o.duration}
	if ctx.Err() != nil { // interrupted
		res.elapsed = max(0, min(o.duration, time.Since(win.from)))
	}
	if firstGen != 0 {
		res.writes = int(lastGen - firstGen + 1)
	}
	res.expected = res.writes * len(watchers)
	for i := range lats {
		res.lat = append(res.lat, lats[i]...)
		res.missing += missing[i]
	}
	slices.Sort(res.lat)
	slices.Sort(res.write)
	return res, nil
}

// watchEvents receives one watcher's events until the last generation
// written (finalGen, once writerDone is closed) or its channel closes,
// and returns the latencies of the events of writes started in the window
// and how many of those never arrived.
func watchEvents(ch <-chan cellclient.WatchEvent, clock *eventClock, win window, gen0 uint64, writerDone <-chan struct{},
	finalGen *atomic.Uint64, rec *recorder) ([]time.Duration, int) {
	var lat []time.Duration
	expect, final := gen0+1, uint64(0)
	missing := 0
	inWindow := func(g uint64) bool {
		t, ok := clock.get(g)
		return ok && !t.Before(win.from) && t.Before(win.to)
	}
	for final == 0 || expect <= final {
		var e cellclient.WatchEvent
		var ok bool
		select {
		case e, ok = <-ch:
		case <-writerDone:
			final, writerDone = finalGen.Load(), nil
			continue
		}
		if !ok {
			break
		}
		recv := time.Now()
		if e.Err != nil {
			rec.fail(e.Err)
			break
		}
		g := e.Stat.ContentGeneration
		if g != expect {
			rec.fail(fmt.Errorf("event for generation %d, expected %d", g, expect))
			if g < expect {
				continue // repeated or out of order
			}
			for ; expect < g; expect++ {
				if inWindow(expect) {
					missing++
				}
			}
		}
		expect = g + 1
		if t0, ok := clock.get(g); ok && inWindow(g) {
			lat = append(lat, recv.Sub(t0))
			rec.ops.Add(1)
		}
	}
	// Events that never came.
	for ; final != 0 && expect <= final; expect++ {
		if inWindow(expect) {
			missing++
		}
	}
	return lat, missing
}

// benchEventsSummary is bench events' result, as printed with --json.
type benchEventsSummary struct {
	Workload     string   `json:"workload"`
	File         string   `json:"file"`
	Watchers     int      `json:"watchers"`
	IntervalMs   float64  `json:"interval_ms"`
	Size         int      `json:"size"`
	Duration     float64  `json:"duration_s"`
	Writes       int      `json:"writes"`
	Events       int      `json:"events"`
	Expected     int      `json:"expected_events"`
	Missing      int      `json:"missing_events"`
	Errors       int64    `json:"errors"`
	EventsPerSec float64  `json:"events_per_sec"`
	MeanMs       float64  `json:"mean_ms"`
	P50Ms        float64  `json:"p50_ms"`
	P90Ms        float64  `json:"p90_ms"`
	P99Ms        float64  `json:"p99_ms"`
	MaxMs        float64  `json:"max_ms"`
	WriteP50Ms   float64  `json:"write_p50_ms"`
	WriteP99Ms   float64  `json:"write_p99_ms"`
	FirstErrors  []string `json:"first_errors,omitempty"`
}

func summarizeBenchEvents(o eventsBenchOptions, name string, r benchEventsResult) benchEventsSummary {
	s := benchEventsSummary{Workload: "events", File: name, Watchers: o.watchers, IntervalMs: ms(o.interval), Size: o.size,
		Duration: r.elapsed.Seconds(), Writes: r.writes, Events: len(r.lat), Expected: r.expected, Missing: r.missing,
		Errors: r.errs, FirstErrors: r.first}
	if s.Duration > 0 {
		s.EventsPerSec = float64(s.Events) / s.Duration
	}
	if len(r.lat) > 0 {
		var sum time.Duration
		for _, d := range r.lat {
			sum += d
		}
		s.MeanMs = ms(sum / time.Duration(len(r.lat)))
		s.P50Ms, s.P90Ms, s.P99Ms = ms(quantile(r.lat, 0.5)), ms(quantile(r.lat, 0.9)), ms(quantile(r.lat, 0.99))
		s.MaxMs = ms(r.lat[len(r.lat)-1])
	}
	if len(r.write) > 0 {
		s.WriteP50Ms, s.WriteP99Ms = ms(quantile(r.write, 0.5)), ms(quantile(r.write, 0.99))
	}
	return s
}

// reportBenchEvents prints the summary (and the first errors on stderr).
// A run fails only if no event arrived.
func (a *app) reportBenchEvents(o eventsBenchOptions, name string, r benchEventsResult) error {
	s := summarizeBenchEvents(o, name, r)
	for _, e := range s.FirstErrors {
		fmt.Fprintf(a.stderr, "hasp: bench: error: %s\n", e)
	}
	var err error
	if a.json {
		err = a.emit(s)
	} else {
		err = writeBenchEvents(a.stdout, s)
	}
	if err != nil {
		return err
	}
	if s.Events == 0 {
		return errors.New("bench: no event arrived")
	}
	return nil
}

func writeBenchEvents(w io.Writer, s benchEventsSummary) error {
	fmt.Fprintf(w, "bench events: %d watchers, a write of %d bytes every %v, %.1fs measured\n",
		s.Watchers, s.Size, time.Duration(s.IntervalMs*float64(time.Millisecond)), s.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "writes\t%d\n", s.Writes)
	fmt.Fprintf(tw, "events\t%d of %d (%d missing)\n", s.Events, s.Expected, s.Missing)
	fmt.Fprintf(tw, "errors\t%d\n", s.Errors)
	fmt.Fprintf(tw, "events/s\t%.1f\n", s.EventsPerSec)
	fmt.Fprintf(tw, "latency\tp50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms\n",
		s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs, s.MeanMs)
	fmt.Fprintf(tw, "write\tp50 %.2fms  p99 %.2fms\n", s.WriteP50Ms, s.WriteP99Ms)
	return tw.Flush()
}
