package main

import (
	"context"
	"encoding/binary"
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

// benchInvalRoot is the directory under which each bench invalidate run
// makes its file.
const benchInvalRoot = "/ls/local/bench-inval"

// invalOptions are bench invalidate's flags.
type invalOptions struct {
	sessions int
	writes   int
	recache  string // "all", "none" or "both"
	size     int
	width    int
}

func (o *invalOptions) validate() error {
	switch {
	case o.sessions < 1:
		return usagef("--sessions %d: must be at least 1", o.sessions)
	case o.writes < 1:
		return usagef("--writes %d: must be at least 1", o.writes)
	case o.recache != "all" && o.recache != "none" && o.recache != "both":
		return usagef("--recache %q: want all, none or both", o.recache)
	case o.size < 8:
		return usagef("--size %d: must be at least 8 (a write's number is in the contents)", o.size)
	case o.width < 1:
		return usagef("--width %d: must be at least 1", o.width)
	}
	return nil
}

// benchInvalCmd is `hasp bench invalidate`. Of bench's flags it uses --size.
func (a *app) benchInvalCmd(o *benchOptions) *cobra.Command {
	vo := &invalOptions{}
	cmd := &cobra.Command{
		Use:   "invalidate",
		Short: "Benchmark writes to a file many sessions cache (invalidation fan-out)",
		Long: "invalidate makes a file of --size bytes, /ls/CELL/bench-inval/RUN (RUN is the run's\n" +
			"id; deleted afterwards), and --sessions sessions, each its own client with its own\n" +
			"connection (made from this host's default source address), that open the file\n" +
			"and read it, so that each caches it. Then one more session, with no cache, writes\n" +
			"the file --writes times, one write after another. A write returns only after the\n" +
			"master has told every session caching the file and each has acknowledged (or its\n" +
			"lease ended): its latency is the fan-out's cost.\n\n" +
			"--recache all: before each write every session reads the file again (its cached\n" +
			"copy was invalidated), so each write invalidates --sessions caches; the re-read\n" +
			"must return the last write's contents (a stale read is counted). A read that\n" +
			"overlaps the end of a write is answered not cacheable, so it re-reads (up to three\n" +
			"rounds) until the master tracks every session as caching. --recache none:\n" +
			"nobody reads between writes, so the writes invalidate nothing (after one untimed\n" +
			"write that clears the caches): the baseline. --recache both (the default) runs\n" +
			"all, then none. Before each write it asks the master how many (session, node)\n" +
			"cache entries it tracks: the write's targets.\n\n" +
			"It reports, per phase, the write latency percentiles and the targets, then the\n" +
			"invalidations the sessions received, this process's memory and the load\n" +
			"average. --timeout bounds each call; --width bounds concurrent set-up calls and\n" +
			"re-reads. It fails if any write failed or any re-read was stale.",
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			vo.size = o.size
			return a.benchInval(ctx, *vo)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&vo.sessions, "sessions", 1000, "sessions that cache the file, each its own client and connection")
	f.IntVar(&vo.writes, "writes", 100, "timed writes per phase")
	f.StringVar(&vo.recache, "recache", "both", "all (sessions re-read between writes), none, or both phases")
	f.IntVar(&vo.width, "width", 2*setupWidth, "concurrent calls while setting up and re-reading")
	return cmd
}

// invalPhase is one phase's result.
type invalPhase struct {
	Recache     string   `json:"recache"`
	Writes      int      `json:"writes"`
	Errors      int      `json:"errors"`
	TargetsMin  int      `json:"targets_min"`
	TargetsMean float64  `json:"targets_mean"`
	MeanMs      float64  `json:"mean_ms"`
	P50Ms       float64  `json:"p50_ms"`
	P90Ms       float64  `json:"p90_ms"`
	P99Ms       float64  `json:"p99_ms"`
	MaxMs       float64  `json:"max_ms"`
	RecacheP50  float64  `json:"recache_p50_ms,omitempty"` // all sessions re-reading
	RecacheMax  float64  `json:"recache_max_ms,omitempty"`
	StaleReads  int64    `json:"stale_reads"`
	ReadErrors  int64    `json:"read_errors"`
	FirstErrors []string `json:"first_errors,omitempty"`
}

// invalSummary is bench invalidate's result, as printed with --json.
type invalSummary struct {
	Workload      string       `json:"workload"`
	Sessions      int          `json:"sessions"`
	Size          int          `json:"size"`
	File          string       `json:"file"`
	SetupS        float64      `json:"setup_s"`
	Phases        []invalPhase `json:"phases"`
	Invalidations uint64       `json:"invalidations_received"`
	BenchRSSMB    float64      `json:"bench_rss_mb"`
	LoadStart     float64      `json:"loadavg_start"`
	LoadEnd       float64      `json:"loadavg_end"`
}

// invalRun is one bench invalidate run's state.
type invalRun struct {
	a       *app
	o       invalOptions
	name    string
	writer  *cellclient.Handle
	readers []*cellclient.Handle
	n       uint64 // the last write's number
	master  string // the master's address, as last found
	buf     []byte
	errMu   sync.Mutex
	errs    []string
}

func (a *app) benchInval(ctx context.Context, o invalOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	s := invalSummary{Workload: "invalidate", Sessions: o.sessions, Size: o.size, LoadStart: loadAvg()}
	r := &invalRun{a: a, o: o, buf: make([]byte, o.size),
		name: fmt.Sprintf("%s/%s-%04x", benchInvalRoot, time.Now().UTC().Format("20060102-150405"), rand.IntN(1<<16))}
	s.File = r.name
	start := time.Now()
	wc, err := a.dialMany(ctx, 1, 1, func(cfg *cellclient.Config) { cfg.DisableCache = true })
	defer closeClients(wc)
	if err != nil {
		return err
	}
	readers, err := a.dialMany(ctx, o.sessions, o.width, nil)
	defer closeClients(readers)
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	err = r.setup(ctx, wc[0], readers)
	defer r.remove(ctx, wc[0])
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	s.SetupS = time.Since(start).Seconds()
	phases := []string{o.recache}
	if o.recache == "both" {
		phases = []string{"all", "none"}
	}
	for _, p := range phases {
		if ctx.Err() != nil {
			break
		}
		s.Phases = append(s.Phases, r.phase(ctx, p))
	}
	for _, c := range readers {
		s.Invalidations += c.CacheStats().Invalidations
	}
	if ps, err := readProc("self"); err == nil {
		s.BenchRSSMB = float64(ps.rssKB) / 1024
	}
	s.LoadEnd = loadAvg()
	return a.reportInval(s)
}

// setup makes the file with the writer and has every reader open and read
// it.
func (r *invalRun) setup(ctx context.Context, w *cellclient.Client, readers []*cellclient.Client) error {
	octx, cancel := context.WithTimeout(ctx, r.a.timeout)
	_, err := w.Open(octx, benchInvalRoot, &cellclient.OpenOptions{Create: fsapi.CreateMay, Directory: true})
	cancel()
	if err != nil {
		return err
	}
	octx, cancel = context.WithTimeout(ctx, r.a.timeout)
	h, err := w.Open(octx, r.name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: r.contents(0)})
	cancel()
	if err != nil {
		return err
	}
	r.writer = h
	r.readers = make([]*cellclient.Handle, len(readers))
	return parallel(len(readers), r.o.width, func(i int) error {
		ctx, cancel := context.WithTimeout(ctx, r.a.timeout)
		defer cancel()
		h, err := readers[i].Open(ctx, r.name, nil)
		if err != nil {
			return err
		}
		r.readers[i] = h
		_, _, err = h.GetContentsAndStat(ctx)
		return err
	})
}

// contents are write n's contents: n, then zeros.
func (r *invalRun) contents(n uint64) []byte {
	clear(r.buf)
	binary.LittleEndian.PutUint64(r.buf, n)
	return r.buf
}

// remove deletes the run's file, best effort, whatever happened.
func (r *invalRun) remove(ctx context.Context, w *cellclient.Client) {
	if r.writer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.a.timeout)
	defer cancel()
	if err := r.writer.Delete(ctx); err != nil && !errors.Is(err, fsapi.ErrNotExist) {
		fmt.Fprintf(r.a.stderr, "hasp: bench: could not remove %s: %s\n", r.name, oneLine(err))
	}
}

func (r *invalRun) fail(err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if len(r.errs) < maxShownErrors {
		r.errs = append(r.errs, oneLine(err))
	}
}

// phase runs o.writes timed writes, each after every reader re-read the
// file (recache "all") or with nobody reading (after one untimed write
// that leaves no cached copy).
func (r *invalRun) phase(ctx context.Context, recache string) invalPhase {
	p := invalPhase{Recache: recache, TargetsMin: -1}
	r.errs = nil
	var stale, readErrs atomic.Int64
	var lat, recacheLat []time.Duration
	targets := 0
	if recache == "none" {
		if err := r.write(ctx); err != nil {
			r.fail(err)
		}
	}
	for range r.o.writes {
		if ctx.Err() != nil {
			break
		}
		var spent time.Duration
		st, err := r.masterStatus(ctx)
		// The last write invalidated every copy: re-read. A read that
		// overlapped the write's last step is served not cacheable; its
		// session caches the file at its next read, so re-read (copies
		// still cached cost nothing) until the master tracks every
		// session, three rounds at most.
		for round := 0; recache == "all" && r.n > 0 && round < 3; round++ {
			if err == nil && round > 0 && st.CacheEntries >= len(r.readers) {
				break
			}
			t0 := time.Now()
			r.reread(ctx, &stale, &readErrs)
			spent += time.Since(t0)
			st, err = r.masterStatus(ctx)
		}
		if spent > 0 {
			recacheLat = append(recacheLat, spent)
		}
		if err == nil {
			if p.TargetsMin < 0 || st.CacheEntries < p.TargetsMin {
				p.TargetsMin = st.CacheEntries
			}
			targets += st.CacheEntries
		}
		t0 := time.Now()
		err = r.write(ctx)
		d := time.Since(t0)
		if err != nil {
			p.Errors++
			r.fail(err)
			continue
		}
		lat = append(lat, d)
	}
	p.Writes = len(lat)
	if n := p.Writes + p.Errors; n > 0 {
		p.TargetsMean = float64(targets) / float64(n)
	}
	p.TargetsMin = max(p.TargetsMin, 0)
	p.StaleReads, p.ReadErrors, p.FirstErrors = stale.Load(), readErrs.Load(), r.errs
	slices.Sort(lat)
	if len(lat) > 0 {
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		p.MeanMs = ms(sum / time.Duration(len(lat)))
		p.P50Ms, p.P90Ms, p.P99Ms = ms(quantile(lat, 0.5)), ms(quantile(lat, 0.9)), ms(quantile(lat, 0.99))
		p.MaxMs = ms(lat[len(lat)-1])
	}
	if len(recacheLat) > 0 {
		slices.Sort(recacheLat)
		p.RecacheP50, p.RecacheMax = ms(quantile(recacheLat, 0.5)), ms(recacheLat[len(recacheLat)-1])
	}
	return p
}

// reread has every reader read the file, checking it sees the last write.
func (r *invalRun) reread(ctx context.Context, stale, readErrs *atomic.Int64) {
	want := r.n
	parallel(len(r.readers), r.o.width, func(k int) error {
		ctx, cancel := context.WithTimeout(ctx, r.a.timeout)
		defer cancel()
		data, _, err := r.readers[k].GetContentsAndStat(ctx)
		switch {
		case err != nil:
			readErrs.Add(1)
			r.fail(err)
		case len(data) < 8 || binary.LittleEndian.Uint64(data) != want:
			stale.Add(1)
		}
		return nil
	})
}

// write writes the file's next contents. It is not cut short when ctx
// ends; --timeout bounds it.
func (r *invalRun) write(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.a.timeout)
	defer cancel()
	_, err := r.writer.SetContents(ctx, r.contents(r.n+1), fsapi.AnyGeneration)
	if err == nil {
		r.n++
	}
	return err
}

// masterStatus is the status of the replica that says it is master: the
// one that was last time, or the one found by asking all.
func (r *invalRun) masterStatus(ctx context.Context) (*cellclient.ReplicaStatus, error) {
	if r.master != "" {
		ctx, cancel := context.WithTimeout(ctx, r.a.timeout)
		defer cancel()
		if st, err := cellclient.QueryStatus(ctx, r.master, r.a.timeout); err == nil && st.State == "master" {
			return st, nil
		}
	}
	st, addr, err := findMaster(ctx, r.a.addrs, r.a.timeout)
	r.master = addr
	return st, err
}

// findMaster asks every replica and returns the master's status and
// address.
func findMaster(ctx context.Context, addrs []string, timeout time.Duration) (*cellclient.ReplicaStatus, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, res := range queryAll(ctx, addrs, timeout) {
		if res.err == nil && res.st.State == "master" {
			return res.st, res.addr, nil
		}
	}
	return nil, "", errors.New("no replica says it is master")
}

func (a *app) reportInval(s invalSummary) error {
	failed := len(s.Phases) == 0
	for _, p := range s.Phases {
		for _, e := range p.FirstErrors {
			fmt.Fprintf(a.stderr, "hasp: bench: error: %s\n", e)
		}
		if p.Errors > 0 || p.StaleReads > 0 || p.Writes == 0 {
			failed = true
		}
	}
	var err error
	if a.json {
		err = a.emit(s)
	} else {
		err = writeBenchInval(a.stdout, s)
	}
	if err != nil {
		return err
	}
	if failed {
		return errors.New("bench: a write failed or a re-read was stale")
	}
	return nil
}

func writeBenchInval(w io.Writer, s invalSummary) error {
	fmt.Fprintf(w, "bench invalidate: %d caching sessions, a %d-byte file (%s), set up in %.1fs\n",
		s.Sessions, s.Size, s.File, s.SetupS)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECACHE\tWRITES\tERRORS\tTARGETS\tP50\tP90\tP99\tMAX\tMEAN\tRE-READ ALL\tSTALE")
	for _, p := range s.Phases {
		reread := "-"
		if p.Recache == "all" {
			reread = fmt.Sprintf("p50 %.1fms", p.RecacheP50)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f (min %d)\t%.2fms\t%.2fms\t%.2fms\t%.2fms\t%.2fms\t%s\t%d\n", p.Recache,
			p.Writes, p.Errors, p.TargetsMean, p.TargetsMin, p.P50Ms, p.P90Ms, p.P99Ms, p.MaxMs, p.MeanMs, reread,
			p.StaleReads)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "invalidations received %d; this process's RSS %.0f MB; load %.2f at start, %.2f at end\n",
		s.Invalidations, s.BenchRSSMB, s.LoadStart, s.LoadEnd)
	return nil
}
