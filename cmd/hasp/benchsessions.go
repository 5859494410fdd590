package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
)

// clockTicks is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// every Linux this runs on).
const clockTicks = 100

// sessOptions are bench sessions' flags.
type sessOptions struct {
	count    int
	duration time.Duration
	width    int
	pid      int
	sample   time.Duration
	sources  int
}

func (o *sessOptions) validate() error {
	switch {
	case o.count < 1:
		return usagef("--count %d: must be at least 1", o.count)
	case o.duration <= 0:
		return usagef("--duration %v: must be positive", o.duration)
	case o.width < 1:
		return usagef("--width %d: must be at least 1", o.width)
	case o.pid < 0:
		return usagef("--master-pid %d: must not be negative", o.pid)
	case o.sample <= 0:
		return usagef("--sample %v: must be positive", o.sample)
	case o.sources < 0 || o.sources > 254:
		return usagef("--source-addrs %d: must be 0 to 254", o.sources)
	}
	return nil
}

// benchSessionsCmd is `hasp bench sessions`. Of bench's flags it uses
// --duration.
func (a *app) benchSessionsCmd(o *benchOptions) *cobra.Command {
	so := &sessOptions{}
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "Hold many concurrent sessions; report expiries and the master's CPU and memory",
		Long: "sessions makes --count sessions, each its own client with its own connection and\n" +
			"KeepAlive (made from this host's default source address; --width at a time), and\n" +
			"holds them, idle, for --duration. It counts each session's events (jeopardy, safe,\n" +
			"expired, master fail-over) and, at the end, the sessions no longer alive; then it\n" +
			"closes them.\n\n" +
			"It samples the master every --sample: its CPU time and resident memory from\n" +
			"/proc/PID/stat and /proc/PID/status, and its session count from its status. The\n" +
			"master's process is the one listening on the master's address on this host\n" +
			"(found through /proc/net/tcp), or --master-pid. It reports the master's CPU (cores\n" +
			"busy on average) during the hold, its RSS before the sessions, after they were\n" +
			"made and at the end, and the same for this process (which holds a client per\n" +
			"session), with the load average. It fails if a session could not be made or did\n" +
			"not survive the hold.",
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			so.duration = o.duration
			return a.benchSessions(ctx, *so)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&so.count, "count", 100, "concurrent sessions, each its own client and connection")
	f.IntVar(&so.width, "width", 2*setupWidth, "sessions made (and closed) at a time")
	f.IntVar(&so.pid, "master-pid", 0, "the master's process id (default: the process listening on its address)")
	f.DurationVar(&so.sample, "sample", 10*time.Second, "how often to sample the master (and print progress)")
	f.IntVar(&so.sources, "source-addrs", 0, "connect session i from 127.0.0.(1 + i mod N) (0: the system's choice)")
	return cmd
}

// sessEvents counts the sessions' events.
type sessEvents struct {
	jeopardy, safe, expired, failover atomic.Int64
}

func (e *sessEvents) watch(c *cellclient.Client) {
	for ev := range c.Events() {
		switch ev.Kind {
		case cellclient.EventJeopardy:
			e.jeopardy.Add(1)
		case cellclient.EventSafe:
			e.safe.Add(1)
		case cellclient.EventExpired:
			e.expired.Add(1)
		case cellclient.EventMasterFailover:
			e.failover.Add(1)
		}
	}
}

// sessSummary is bench sessions' result, as printed with --json.
type sessSummary struct {
	Workload   string   `json:"workload"`
	Count      int      `json:"count"`
	Made       int      `json:"made"`
	DialErrors int      `json:"dial_errors"`
	DialS      float64  `json:"dial_s"`
	HoldS      float64  `json:"hold_s"`
	LiveEnd    int      `json:"live_end"`
	Jeopardy   int64    `json:"jeopardy_events"`
	Safe       int64    `json:"safe_events"`
	Expired    int64    `json:"expired_events"`
	Failovers  int64    `json:"failover_events"`
	CloseS     float64  `json:"close_s"`
	FirstErrs  []string `json:"first_errors,omitempty"`

	MasterID            string  `json:"master_id"`
	MasterAddr          string  `json:"master_address"`
	MasterPID           int     `json:"master_pid"`
	TermStart           uint64  `json:"term_start"`
	TermEnd             uint64  `json:"term_end"`
	MasterSessionsStart int     `json:"master_sessions_start"`
	MasterSessionsMade  int     `json:"master_sessions_made"`
	MasterSessionsEnd   int     `json:"master_sessions_end"`
	MasterCPUDial       float64 `json:"master_cpu_cores_dial"`
	MasterCPUHold       float64 `json:"master_cpu_cores_hold"`
	MasterRSSIdleMB     float64 `json:"master_rss_idle_mb"`
	MasterRSSMadeMB     float64 `json:"master_rss_made_mb"`
	MasterRSSEndMB      float64 `json:"master_rss_end_mb"`
	MasterRSSMaxMB      float64 `json:"master_rss_max_mb"`
	MasterThreads       int     `json:"master_threads"`
	MasterKBPerSession  float64 `json:"master_kb_per_session"`

	BenchRSSIdleMB    float64 `json:"bench_rss_idle_mb"`
	BenchRSSMadeMB    float64 `json:"bench_rss_made_mb"`
	BenchRSSEndMB     float64 `json:"bench_rss_end_mb"`
	BenchGoroutines   int     `json:"bench_goroutines"`
	BenchCPUHold      float64 `json:"bench_cpu_cores_hold"`
	BenchKBPerSession float64 `json:"bench_kb_per_session"`

	LoadStart float64 `json:"loadavg_start"`
	LoadEnd   float64 `json:"loadavg_end"`
}

// procSample is what a process's /proc files say.
type procSample struct {
	cpuTicks uint64 // user + system
	rssKB    int64
	threads  int
}

func (a *app) benchSessions(ctx context.Context, o sessOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	s := sessSummary{Workload: "sessions", Count: o.count, LoadStart: loadAvg()}
	st, addr, err := findMaster(ctx, a.addrs, a.timeout)
	if err != nil {
		return err
	}
	s.MasterID, s.MasterAddr, s.TermStart, s.MasterSessionsStart = st.ID, addr, st.Term, st.Sessions
	s.MasterPID = o.pid
	if s.MasterPID == 0 {
		if s.MasterPID, err = listenerPID(addr); err != nil {
			fmt.Fprintf(a.stderr, "hasp: bench: the master's CPU and memory are not reported: %s (use --master-pid)\n", oneLine(err))
		}
	}
	m := &procWatch{pid: s.MasterPID}
	self := &procWatch{pid: os.Getpid()}
	m0, self0 := m.sample(), self.sample()
	s.MasterRSSIdleMB, s.BenchRSSIdleMB = mb(m0.rssKB), mb(self0.rssKB)

	// Make the sessions, each watched from its Dial on.
	clients := make([]*cellclient.Client, o.count)
	ev := &sessEvents{}
	var watchers sync.WaitGroup
	var errMu sync.Mutex
	var dialErrs atomic.Int64
	start := time.Now()
	parallel(o.count, o.width, func(i int) error {
		dctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		cfg := cellclient.Config{Addrs: a.addrs, ClientName: "hasp-bench"}
		if o.sources > 0 {
			cfg.LocalAddr = fmt.Sprintf("127.0.0.%d", 1+i%o.sources)
		}
		c, err := cellclient.Dial(dctx, cfg)
		if err != nil {
			if dialErrs.Add(1) <= maxShownErrors {
				errMu.Lock()
				s.FirstErrs = append(s.FirstErrs, oneLine(err))
				errMu.Unlock()
			}
			return ctx.Err() // stop only when interrupted
		}
		clients[i] = c
		watchers.Go(func() { ev.watch(c) })
		return nil
	})
	defer func() {
		closeClients(clients)
		watchers.Wait()
	}()
	s.DialS = time.Since(start).Seconds()
	s.DialErrors = int(dialErrs.Load())
	for _, c := range clients {
		if c != nil {
			s.Made++
		}
	}
	m1, self1 := m.sample(), self.sample()
	if s.DialS > 0 {
		s.MasterCPUDial = cores(m1.cpuTicks-m0.cpuTicks, s.DialS)
	}
	s.MasterRSSMadeMB, s.BenchRSSMadeMB = mb(m1.rssKB), mb(self1.rssKB)
	s.BenchGoroutines = runtime.NumGoroutine()
	if st, err := cellclient.QueryStatus(ctx, addr, a.timeout); err == nil {
		s.MasterSessionsMade = st.Sessions
	}

	// Hold.
	holdStart := time.Now()
	a.holdSessions(ctx, o, holdStart, clients, ev, m, addr)
	m2, self2 := m.sample(), self.sample()
	s.HoldS = time.Since(holdStart).Seconds()
	s.MasterCPUHold = cores(m2.cpuTicks-m1.cpuTicks, s.HoldS)
	s.BenchCPUHold = cores(self2.cpuTicks-self1.cpuTicks, s.HoldS)
	s.MasterRSSEndMB, s.MasterRSSMaxMB, s.MasterThreads = mb(m2.rssKB), mb(m.maxRSS), m2.threads
	s.BenchRSSEndMB = mb(self2.rssKB)
	if s.Made > 0 {
		s.MasterKBPerSession = float64(m1.rssKB-m0.rssKB) / float64(s.Made)
		s.BenchKBPerSession = float64(self1.rssKB-self0.rssKB) / float64(s.Made)
	}
	for _, c := range clients {
		if c != nil && c.Err() == nil {
			s.LiveEnd++
		}
	}
	if st, _, err := findMaster(ctx, a.addrs, a.timeout); err == nil {
		s.TermEnd, s.MasterSessionsEnd = st.Term, st.Sessions
	}
	s.Jeopardy, s.Safe, s.Expired, s.Failovers = ev.jeopardy.Load(), ev.safe.Load(), ev.expired.Load(), ev.failover.Load()

	// Close, a width at a time.
	cstart := time.Now()
	parallel(len(clients), o.width, func(i int) error {
		if clients[i] != nil {
			clients[i].Close()
		}
		return nil
	})
	s.CloseS = time.Since(cstart).Seconds()
	s.LoadEnd = loadAvg()
	return a.reportSessions(s)
}

// holdSessions waits out the hold, sampling the master and printing a
// progress line (not with --json) every --sample.
func (a *app) holdSessions(ctx context.Context, o sessOptions, start time.Time, clients []*cellclient.Client,
	ev *sessEvents, m *procWatch, addr string) {
	end := time.NewTimer(o.duration)
	defer end.Stop()
	tick := time.NewTicker(o.sample)
	defer tick.Stop()
	last, lastAt := m.sample(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			return
		case now := <-tick.C:
			cur := m.sample()
			if a.json {
				continue
			}
			live := 0
			for _, c := range clients {
				if c != nil && c.Err() == nil {
					live++
				}
			}
			sessions := "?"
			if st, err := cellclient.QueryStatus(ctx, addr, a.timeout); err == nil {
				sessions = strconv.Itoa(st.Sessions)
			}
			fmt.Fprintf(a.stderr, "bench sessions: %4.0fs  %d live  %d jeopardy  %d expired  master: %s sessions, "+
				"%.2f cores, RSS %.0f MB\n", now.Sub(start).Seconds(), live, ev.jeopardy.Load(), ev.expired.Load(),
				sessions, cores(cur.cpuTicks-last.cpuTicks, now.Sub(lastAt).Seconds()), mb(cur.rssKB))
			last, lastAt = cur, now
		}
	}
}

// procWatch samples one process and remembers its largest RSS.
type procWatch struct {
	pid    int // 0: none known
	maxRSS int64
}

func (w *procWatch) sample() procSample {
	if w.pid == 0 {
		return procSample{}
	}
	ps, err := readProc(strconv.Itoa(w.pid))
	if err != nil {
		return procSample{}
	}
	w.maxRSS = max(w.maxRSS, ps.rssKB)
	return ps
}

// readProc reads the CPU time, RSS and thread count of process pid ("self"
// for this one).
func readProc(pid string) (procSample, error) {
	var ps procSample
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return ps, err
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing one. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return ps, fmt.Errorf("/proc/%s/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return ps, fmt.Errorf("/proc/%s/stat: %w", pid, err)
	}
	ps.cpuTicks = ut + st
	fh, err := os.Open(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return ps, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fv := strings.Fields(v)
		if len(fv) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			ps.rssKB, _ = strconv.ParseInt(fv[0], 10, 64)
		case "Threads":
			ps.threads, _ = strconv.Atoi(fv[0])
		}
	}
	return ps, sc.Err()
}

// listenerPID finds the process on this host listening on addr (an IPv4
// host:port): the socket's inode from /proc/net/tcp, then the process with
// a descriptor for it.
func listenerPID(addr string) (int, error) {
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	inode := ""
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
			continue
		}
		ip, port, ok := parseProcAddr(f[1])
		if ok && port == ta.Port && (ip.Equal(ta.IP) || ip.IsUnspecified()) {
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("no socket listening on %s on this host", addr)
	}
	want := "socket:[" + inode + "]"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == want {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process found holding the socket listening on %s", addr)
}

// parseProcAddr parses /proc/net/tcp's "0100007F:1C85": the IPv4 address
// as a 32-bit number in the host's byte order (little-endian here), then
// the port.
func parseProcAddr(s string) (net.IP, int, bool) {
	h, p, ok := strings.Cut(s, ":")
	ipb, err := hex.DecodeString(h)
	if !ok || err != nil || len(ipb) != 4 {
		return nil, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, 0, false
	}
	return net.IPv4(ipb[3], ipb[2], ipb[1], ipb[0]), int(port), true
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// cores is CPU ticks over a span as cores busy on average.
func cores(ticks uint64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(ticks) / clockTicks / seconds
}

func (a *app) reportSessions(s sessSummary) error {
	for _, e := range s.FirstErrs {
		fmt.Fprintf(a.stderr, "hasp: bench: error: %s\n", e)
	}
	var err error
	if a.json {
		err = a.emit(s)
	} else {
		err = writeBenchSessions(a.stdout, s)
	}
	if err != nil {
		return err
	}
	switch {
	case s.Made == 0:
		return errors.New("bench: no session could be made")
	case s.DialErrors > 0 || s.LiveEnd < s.Made || s.Expired > 0:
		return fmt.Errorf("bench: %d of %d sessions not made, %d of %d not alive at the end", s.DialErrors, s.Count,
			s.Made-s.LiveEnd, s.Made)
	}
	return nil
}

func writeBenchSessions(w io.Writer, s sessSummary) error {
	fmt.Fprintf(w, "bench sessions: %d of %d sessions made in %.1fs, held %.1fs, closed in %.1fs\n",
		s.Made, s.Count, s.DialS, s.HoldS, s.CloseS)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "alive at the end\t%d\n", s.LiveEnd)
	fmt.Fprintf(tw, "events\t%d jeopardy, %d safe, %d expired, %d master fail-overs\n", s.Jeopardy, s.Safe, s.Expired,
		s.Failovers)
	fmt.Fprintf(tw, "master\t%s (%s, pid %d), term %d→%d, sessions %d→%d→%d\n", s.MasterID, s.MasterAddr, s.MasterPID,
		s.TermStart, s.TermEnd, s.MasterSessionsStart, s.MasterSessionsMade, s.MasterSessionsEnd)
	fmt.Fprintf(tw, "master CPU\t%.3f cores while making the sessions, %.3f cores while holding them\n",
		s.MasterCPUDial, s.MasterCPUHold)
	fmt.Fprintf(tw, "master RSS\t%.0f MB idle, %.0f MB with the sessions, %.0f MB at the end (max %.0f MB), %.1f KB a session\n",
		s.MasterRSSIdleMB, s.MasterRSSMadeMB, s.MasterRSSEndMB, s.MasterRSSMaxMB, s.MasterKBPerSession)
	fmt.Fprintf(tw, "this process\tRSS %.0f MB before, %.0f MB with the sessions (%.1f KB a session), %d goroutines, %.3f cores while holding\n",
		s.BenchRSSIdleMB, s.BenchRSSMadeMB, s.BenchKBPerSession, s.BenchGoroutines, s.BenchCPUHold)
	fmt.Fprintf(tw, "load\t%.2f at start, %.2f at end\n", s.LoadStart, s.LoadEnd)
	return tw.Flush()
}
