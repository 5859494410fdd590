package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// maxShownErrors is how many errors bench keeps the text of.
const maxShownErrors = 5

// window is the measured part of a run: operations that start before from
// (warm-up) or end after to are not counted.
type window struct{ from, to time.Time }

// recorder counts what the workers do; the progress line reads it.
type recorder struct {
	ops  atomic.Int64
	errs atomic.Int64

	mu    sync.Mutex // protects first
	first []string
}

func (r *recorder) fail(err error) {
	if r.errs.Add(1) > maxShownErrors {
		return
	}
	r.mu.Lock()
	r.first = append(r.first, oneLine(err))
	r.mu.Unlock()
}

// worker is one load goroutine.
type worker struct {
	handles []*cellclient.Handle
	write   bool
	timeout time.Duration
	buf     []byte
	n       uint64
}

// run does operations until the window ends (or ctx does) and returns the
// latencies of the successful ones inside the window.
func (w *worker) run(ctx context.Context, win window, rec *recorder) []time.Duration {
	var lat []time.Duration
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(win.to) {
			break
		}
		err := w.op(ctx)
		t1 := time.Now()
		if t0.Before(win.from) || t1.After(win.to) {
			continue
		}
		if err != nil {
			rec.fail(err)
			continue
		}
		lat = append(lat, t1.Sub(t0))
		rec.ops.Add(1)
	}
	return lat
}

// op does one operation on a random file. It is not cut short when ctx
// ends (a write cut short has an unknown outcome); --timeout bounds it.
func (w *worker) op(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	h := w.handles[rand.IntN(len(w.handles))]
	if !w.write {
		_, _, err := h.GetContentsAndStat(ctx)
		return err
	}
	w.n++
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], w.n)
	copy(w.buf, b[:]) // every write changes the contents
	_, err := h.SetContents(ctx, w.buf, fsapi.AnyGeneration)
	return err
}

// benchResult is what a run measured.
type benchResult struct {
	lat     []time.Duration // sorted
	errs    int64
	first   []string
	elapsed time.Duration
}

// load runs the workers, with a progress line, and gathers their results.
func (a *app) load(ctx context.Context, o benchOptions, pools [][]*cellclient.Handle) benchResult {
	start := time.Now()
	win := window{from: start.Add(o.warmup), to: start.Add(o.warmup + o.duration)}
	rec := &recorder{}
	stop := a.progress(o.workload, win, rec)
	lats := make([][]time.Duration, o.clients)
	var wg sync.WaitGroup
	for i := range o.clients {
		w := &worker{handles: pools[i%len(pools)], write: o.workload == "write", timeout: a.timeout,
			buf: make([]byte, o.size)}
		wg.Go(func() { lats[i] = w.run(ctx, win, rec) })
	}
	wg.Wait()
	stop()
	res := benchResult{lat: slices.Concat(lats...), errs: rec.errs.Load(), first: rec.first, elapsed: o.duration}
	if ctx.Err() != nil { // interrupted
		res.elapsed = max(0, min(o.duration, time.Since(win.from)))
	}
	slices.Sort(res.lat)
	return res
}

// progress prints a line on stderr every second of the window until the
// returned stop is called: in place on a terminal, as plain lines
// otherwise, none with --json.
func (a *app) progress(workload string, win window, rec *recorder) (stop func()) {
	if a.json {
		return func() {}
	}
	p := &progressPrinter{w: a.stderr, tty: isTerminal(a.stderr), workload: workload, win: win, rec: rec}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		p.loop(done)
	}()
	return func() { close(done); <-finished }
}

// progressPrinter prints bench's progress lines.
type progressPrinter struct {
	w        io.Writer
	tty      bool
	workload string
	win      window
	rec      *recorder
}

func (p *progressPrinter) loop(done <-chan struct{}) {
	defer func() {
		if p.tty {
			fmt.Fprintln(p.w)
		}
	}()
	if wait := time.Until(p.win.from); wait > 0 {
		p.print(fmt.Sprintf("bench %s: warming up for %v", p.workload, wait.Round(time.Millisecond)))
		select {
		case <-done:
			return
		case <-time.After(wait):
		}
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	lastAt := time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			ops := p.rec.ops.Load()
			rate := float64(ops-last) / now.Sub(lastAt).Seconds()
			p.print(fmt.Sprintf("bench %s: %3.0fs  %d ops  %.0f ops/s  %d errors", p.workload,
				now.Sub(p.win.from).Seconds(), ops, rate, p.rec.errs.Load()))
			last, lastAt = ops, now
		}
	}
}

func (p *progressPrinter) print(line string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// benchSummary is bench's result, as printed with --json.
type benchSummary struct {
	Workload    string   `json:"workload"`
	Clients     int      `json:"clients"`
	Sessions    string   `json:"sessions"`
	Names       int      `json:"names"`
	Size        int      `json:"size"`
	Duration    float64  `json:"duration_s"`
	Ops         int      `json:"ops"`
	Errors      int64    `json:"errors"`
	OpsPerSec   float64  `json:"ops_per_sec"`
	MeanMs      float64  `json:"mean_ms"`
	P50Ms       float64  `json:"p50_ms"`
	P90Ms       float64  `json:"p90_ms"`
	P99Ms       float64  `json:"p99_ms"`
	MaxMs       float64  `json:"max_ms"`
	FirstErrors []string `json:"first_errors,omitempty"`
}

func summarizeBench(o benchOptions, r benchResult) benchSummary {
	s := benchSummary{Workload: o.workload, Clients: o.clients, Sessions: o.sessions, Names: o.names, Size: o.size,
		Duration: r.elapsed.Seconds(), Ops: len(r.lat), Errors: r.errs, FirstErrors: r.first}
	if s.Duration > 0 {
		s.OpsPerSec = float64(s.Ops) / s.Duration
	}
	if len(r.lat) == 0 {
		return s
	}
	var sum time.Duration
	for _, d := range r.lat {
		sum += d
	}
	s.MeanMs = ms(sum / time.Duration(len(r.lat)))
	s.P50Ms, s.P90Ms, s.P99Ms = ms(quantile(r.lat, 0.5)), ms(quantile(r.lat, 0.9)), ms(quantile(r.lat, 0.99))
	s.MaxMs = ms(r.lat[len(r.lat)-1])
	return s
}

// quantile is the q-quantile of sorted, non-empty samples (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report prints the summary (and the first errors on stderr). A run fails
// only if no operation succeeded.
func (a *app) report(o benchOptions, r benchResult) error {
	s := summarizeBench(o, r)
	for _, e := range s.FirstErrors {
		fmt.Fprintf(a.stderr, "hasp: bench: error: %s\n", e)
	}
	var err error
	if a.json {
		err = a.emit(s)
	} else {
		err = writeBench(a.stdout, s)
	}
	if err != nil {
		return err
	}
	if s.Ops == 0 {
		return errors.New("bench: no operation succeeded")
	}
	return nil
}

func writeBench(w io.Writer, s benchSummary) error {
	fmt.Fprintf(w, "bench %s: %d clients, %s sessions, %d files of %d bytes, %.1fs measured\n",
		s.Workload, s.Clients, s.Sessions, s.Names, s.Size, s.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ops\t%d\n", s.Ops)
	fmt.Fprintf(tw, "errors\t%d\n", s.Errors)
	fmt.Fprintf(tw, "ops/s\t%.1f\n", s.OpsPerSec)
	fmt.Fprintf(tw, "latency\tp50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms\n",
		s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs, s.MeanMs)
	return tw.Flush()
}
