package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// failoverOptions are bench failover's flags.
type failoverOptions struct {
	haspd     string
	runs      int
	writers   int
	heartbeat time.Duration
	settle    time.Duration
	keep      bool
}

func (a *app) benchFailoverCmd() *cobra.Command {
	o := &failoverOptions{}
	cmd := &cobra.Command{
		Use:   "failover",
		Short: "Measure kill -9 of the master → first acknowledged write, on a cell it starts",
		Long: "failover starts its own cell of five haspd processes on free 127.0.0.1 ports (data\n" +
			"in a temporary directory), keeps --writers clients writing, and --runs times: kills\n" +
			"the master with SIGKILL, measures the time from the kill to the first write that\n" +
			"was issued after the kill and acknowledged, and restarts the killed replica. It\n" +
			"reports each run, the median, and every error the writers saw (there should be none:\n" +
			"the client retries across the fail-over). --cell is ignored.",
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error { return a.benchFailover(ctx, *o) }),
	}
	f := cmd.Flags()
	f.StringVar(&o.haspd, "haspd", "", "haspd binary (default: next to hasp, then $PATH)")
	f.IntVar(&o.runs, "runs", 5, "fail-overs to measure")
	f.IntVar(&o.writers, "writers", 4, "concurrent writing clients")
	f.DurationVar(&o.heartbeat, "heartbeat-timeout", 0, "haspd --heartbeat-timeout (default: haspd's)")
	f.DurationVar(&o.settle, "settle", 2*time.Second, "steady writing before each kill")
	f.BoolVar(&o.keep, "keep", false, "keep the cell's data directory")
	return cmd
}

// procCell is five haspd processes.
type procCell struct {
	bin, dir string
	addrs    []string
	procs    []*exec.Cmd
	args     []string
}

func findHaspd(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "haspd"); fileExists(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("haspd")
	if err != nil {
		return "", usagef("no haspd binary found next to hasp or in $PATH; build one (go build ./cmd/haspd) and pass --haspd")
	}
	return p, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		out = append(out, ln.Addr().String())
		ln.Close()
	}
	return out, nil
}

func startProcCell(bin string, heartbeat time.Duration) (*procCell, error) {
	dir, err := os.MkdirTemp("", "hasp-failover-")
	if err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(5)
	if err != nil {
		return nil, err
	}
	c := &procCell{bin: bin, dir: dir, addrs: addrs, procs: make([]*exec.Cmd, len(addrs))}
	var initial []string
	for i, a := range addrs {
		initial = append(initial, fmt.Sprintf("r%d=%s", i+1, a))
	}
	if heartbeat > 0 {
		c.args = []string{"--heartbeat-timeout", heartbeat.String()}
	}
	for i, a := range addrs {
		args := append([]string{"--id", fmt.Sprintf("r%d", i+1), "--dir", c.replicaDir(i), "--listen", a,
			"--cell-name", "failover", "--initial-cell", strings.Join(initial, ",")}, c.args...)
		if err := c.start(i, args); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *procCell) replicaDir(i int) string { return filepath.Join(c.dir, fmt.Sprintf("r%d", i+1)) }

func (c *procCell) start(i int, args []string) error {
	logf, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("r%d.log", i+1)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	go func() { cmd.Wait(); logf.Close() }()
	c.procs[i] = cmd
	return nil
}

// restart starts replica i again with only --dir (the rest is stored).
func (c *procCell) restart(i int) error {
	return c.start(i, append([]string{"--dir", c.replicaDir(i)}, c.args...))
}

func (c *procCell) kill(i int) {
	if p := c.procs[i]; p != nil && p.Process != nil {
		p.Process.Signal(syscall.SIGKILL)
	}
}

func (c *procCell) stop() {
	for i := range c.procs {
		c.kill(i)
	}
}

// master finds the replica acting as master.
func (c *procCell) master(ctx context.Context) (int, error) {
	for ctx.Err() == nil {
		for i, a := range c.addrs {
			st, err := cellclient.QueryStatus(ctx, a, 500*time.Millisecond)
			if err == nil && st.State == "master" {
				return i, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1, ctx.Err()
}

// opLog records every write's start and end.
type opLog struct {
	mu   sync.Mutex // protects following fields
	ops  [][2]time.Time
	errs []error
}

func (l *opLog) add(start, end time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errs = append(l.errs, err)
		return
	}
	l.ops = append(l.ops, [2]time.Time{start, end})
}

// firstAckAfter is how long after t the first write issued at or after t
// was acknowledged.
func (l *opLog) firstAckAfter(t time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	best, ok := time.Duration(0), false
	for _, op := range l.ops {
		if !op[0].Before(t) {
			if d := op[1].Sub(t); !ok || d < best {
				best, ok = d, true
			}
		}
	}
	return best, ok
}

func (a *app) benchFailover(ctx context.Context, o failoverOptions) error {
	if o.runs < 1 || o.writers < 1 {
		return usagef("--runs and --writers must be at least 1")
	}
	bin, err := findHaspd(o.haspd)
	if err != nil {
		return err
	}
	cell, err := startProcCell(bin, o.heartbeat)
	if err != nil {
		return err
	}
	defer func() {
		cell.stop()
		if !o.keep {
			os.RemoveAll(cell.dir)
		}
	}()
	wctx, stopWriters := context.WithCancel(ctx)
	log := &opLog{}
	done, err := a.startWriters(wctx, cell.addrs, o.writers, log)
	if err != nil {
		stopWriters()
		return err
	}
	results, err := a.failoverRuns(ctx, cell, o, log)
	stopWriters()
	done.Wait()
	if err != nil {
		return err
	}
	return a.reportFailover(results, log)
}

func (a *app) startWriters(ctx context.Context, addrs []string, n int, log *opLog) (*sync.WaitGroup, error) {
	var wg sync.WaitGroup
	for i := range n {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := cellclient.Dial(dctx, cellclient.Config{Addrs: addrs, ClientName: "bench-failover"})
		if err != nil {
			cancel()
			return &wg, err
		}
		h, err := c.Open(dctx, fmt.Sprintf("/ls/local/failover-%d", i), &cellclient.OpenOptions{Create: fsapi.CreateMay})
		cancel()
		if err != nil {
			c.Close()
			return &wg, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for n := 0; ctx.Err() == nil; n++ {
				start := time.Now()
				octx, cancel := context.WithTimeout(ctx, a.timeout)
				_, err := h.SetContents(octx, []byte(fmt.Sprint(n)), fsapi.AnyGeneration)
				cancel()
				if ctx.Err() != nil {
					return
				}
				log.add(start, time.Now(), err)
			}
		}()
	}
	return &wg, nil
}

func (a *app) failoverRuns(ctx context.Context, cell *procCell, o failoverOptions, log *opLog) ([]time.Duration, error) {
	var results []time.Duration
	for run := 1; run <= o.runs; run++ {
		time.Sleep(o.settle)
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := cell.master(mctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("run %d: no master: %w", run, err)
		}
		killed := time.Now()
		cell.kill(m)
		d, err := waitAck(ctx, log, killed)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		results = append(results, d)
		if !a.json {
			fmt.Fprintf(a.stderr, "run %d: killed master r%d; first acknowledged write after %.0f ms\n", run, m+1, ms(d))
		}
		if err := cell.restart(m); err != nil {
			return nil, fmt.Errorf("run %d: restart r%d: %w", run, m+1, err)
		}
	}
	return results, nil
}

func waitAck(ctx context.Context, log *opLog, killed time.Time) (time.Duration, error) {
	deadline := killed.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if d, ok := log.firstAckAfter(killed); ok {
			return d, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, errors.New("no write acknowledged within 60 s of the kill")
}

type failoverSummary struct {
	Workload string    `json:"workload"`
	Runs     []float64 `json:"runs_ms"`
	MedianMS float64   `json:"median_ms"`
	MaxMS    float64   `json:"max_ms"`
	Writes   int       `json:"writes"`
	Errors   int       `json:"errors"`
	ErrorMsg []string  `json:"error_samples,omitempty"`
}

func (a *app) reportFailover(results []time.Duration, log *opLog) error {
	sorted := slices.Clone(results)
	slices.Sort(sorted)
	s := failoverSummary{Workload: "failover", MedianMS: ms(sorted[len(sorted)/2]), MaxMS: ms(sorted[len(sorted)-1])}
	for _, d := range results {
		s.Runs = append(s.Runs, ms(d))
	}
	log.mu.Lock()
	s.Writes, s.Errors = len(log.ops), len(log.errs)
	for _, err := range log.errs[:min(len(log.errs), 5)] {
		s.ErrorMsg = append(s.ErrorMsg, err.Error())
	}
	log.mu.Unlock()
	if a.json {
		return a.emit(s)
	}
	fmt.Fprintf(a.stdout, "fail-overs: %d  median %.0f ms  max %.0f ms  writes %d  errors %d\n",
		len(results), s.MedianMS, s.MaxMS, s.Writes, s.Errors)
	for _, m := range s.ErrorMsg {
		fmt.Fprintf(a.stdout, "  error: %s\n", m)
	}
	return nil
}
