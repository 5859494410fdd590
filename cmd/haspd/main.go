package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/haspcell/hasp/master"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	id, dir, listen, advertise, cell, initial, logLevel string
	dev                                                 bool
	contentLimit, eventHistory                          int
	sessionLease, heartbeat                             time.Duration
	memLimitMiB                                         int64
	debugAddr                                           string
	set                                                 map[string]bool // flags given on the command line
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	def := master.DefaultConfig()
	o := &options{}
	fs := flag.NewFlagSet("haspd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.id, "id", "", "replica id, e.g. r1 (stored in --dir)")
	fs.StringVar(&o.dir, "dir", "", "data directory (--dev: default ./hasp-dev)")
	fs.StringVar(&o.listen, "listen", "", "TCP address for Raft and clients, e.g. 127.0.0.1:7001")
	fs.StringVar(&o.advertise, "advertise", "", "address peers and clients use (default --listen)")
	fs.StringVar(&o.cell, "cell-name", "", "the cell's name (/ls/CELL/...)")
	fs.StringVar(&o.initial, "initial-cell", "", "every replica of a new cell: r1=HOST:PORT,r2=...; used only when --dir is empty")
	fs.BoolVar(&o.dev, "dev", false, "run a five-replica cell named dev in this process on 127.0.0.1:7001-7005")
	fs.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error (default warn; error with --dev)")
	fs.IntVar(&o.contentLimit, "content-limit", def.ContentLimit, "largest file in bytes (cell-wide; fixed at bootstrap)")
	fs.DurationVar(&o.sessionLease, "session-lease", def.SessionLease, "session lease granted by KeepAlives (stored in --dir)")
	fs.DurationVar(&o.heartbeat, "heartbeat-timeout", def.HeartbeatTimeout,
		"Raft heartbeat and election timeout; the same on every replica (stored in --dir)")
	fs.IntVar(&o.eventHistory, "event-history", def.EventHistory,
		"change events kept in memory for watches; a watch resuming from an older revision is told it was compacted (stored in --dir)")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off by default")
	fs.Int64Var(&o.memLimitMiB, "memory-limit", 64, "soft memory limit per replica in MiB for the Go GC (0: none; the GOMEMLIMIT variable wins)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "haspd:", err)
		return 2
	}
	if o.logLevel == "" {
		o.logLevel = "warn"
		if o.dev {
			o.logLevel = "error"
		}
	}
	logger, err := newLogger(o.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "haspd:", err)
		return 2
	}
	setMemoryLimit(o)
	if err := serveDebug(o.debugAddr); err != nil {
		fmt.Fprintln(stderr, "haspd:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go exitOnSecondSignal(ctx, stop, stderr)
	if o.dev {
		err = runDev(ctx, o, logger, stdout)
	} else {
		err = runReplica(ctx, o, logger, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "haspd:", err)
		return 1
	}
	return 0
}

// exitOnSecondSignal: the first SIGINT or SIGTERM starts a clean shutdown
// (leadership hand-off, raft and store closed); a second one, or a
// shutdown still running after shutdownGrace, ends the process at once. A
// replica that stops uncleanly loses nothing committed (its writes are
// synced), so an operator is never left with a replica that will not die.
func exitOnSecondSignal(ctx context.Context, stop context.CancelFunc, stderr io.Writer) {
	<-ctx.Done()
	stop() // later signals are no longer swallowed by ctx
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	select {
	case sig := <-again:
		fmt.Fprintf(stderr, "haspd: %v again: exiting without a clean shutdown\n", sig)
	case <-time.After(shutdownGrace):
		fmt.Fprintf(stderr, "haspd: shutdown still running after %v: exiting without finishing it\n", shutdownGrace)
	}
	os.Exit(1)
}

// shutdownGrace bounds a clean shutdown.
const shutdownGrace = 30 * time.Second

// serveDebug serves net/http/pprof's handlers on addr, if set, for
// profiling a running replica (go tool pprof http://ADDR/debug/pprof/heap).
func serveDebug(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	go http.Serve(ln, nil) // the pprof handlers are on DefaultServeMux
	return nil
}

// setMemoryLimit makes the GC work harder before the heap outgrows the
// limit, instead of letting it double between collections: a replica's live
// data is small, but bursts of writes leave garbage behind. The limit is a
// floor that follows the live data up (see memLimitFor): a fixed limit below
// the live data makes the GC run without pause, which starved a master
// holding thousands of sessions until it lost its quorum.
func setMemoryLimit(o *options) {
	if o.memLimitMiB <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	base := o.memLimitMiB << 20
	if o.dev {
		base *= int64(len(devAddrs))
	}
	debug.SetMemoryLimit(base)
	go followLiveHeap(base)
}

// followLiveHeap resets the memory limit every second from the runtime's
// own accounting (it runs for the life of the process).
func followLiveHeap(base int64) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	for range time.Tick(time.Second) {
		metrics.Read(samples)
		var v [6]uint64
		for i, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				v[i] = s.Value.Uint64()
			}
		}
		// Memory the GC cannot free by collecting: stacks, runtime
		// metadata, buffers outside the heap.
		overhead := int64(v[1]) - int64(v[2]) - int64(v[3]) - int64(v[4]) - int64(v[5])
		debug.SetMemoryLimit(memLimitFor(base, int64(v[0]), overhead))
	}
}

// memLimitFor is the memory limit for a process whose last GC found live
// bytes of heap and which holds overhead bytes outside the heap: the
// configured base, or room for the live heap to grow by half before the
// next collection if that is more. With at least 50% headroom a
// collection runs at most about twice as often as under GOGC=100, never
// back to back.
func memLimitFor(base, live, overhead int64) int64 {
	return max(base, max(overhead, 0)+live+live/2)
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func (o *options) config(logger *slog.Logger) (master.Config, error) {
	// Only flags given on the command line are passed on: the rest come
	// from what the replica stored in --dir, else the defaults.
	cfg := master.Config{ID: o.id, Dir: o.dir, Listen: o.listen, Advertise: o.advertise, CellName: o.cell, Logger: logger}
	if o.set["content-limit"] {
		cfg.ContentLimit = o.contentLimit
	}
	if o.set["session-lease"] {
		cfg.SessionLease = o.sessionLease
	}
	if o.set["event-history"] {
		if o.eventHistory < 1 {
			return cfg, fmt.Errorf("--event-history %d: must be at least 1", o.eventHistory)
		}
		cfg.EventHistory = o.eventHistory
	}
	if o.set["heartbeat-timeout"] {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = o.heartbeat, o.heartbeat, o.heartbeat
	}
	if o.initial != "" {
		m, err := master.ParseInitialCell(o.initial)
		if err != nil {
			return cfg, err
		}
		cfg.InitialCell = m
	}
	return cfg, nil
}

func runReplica(ctx context.Context, o *options, logger *slog.Logger, stdout io.Writer) error {
	if o.dir == "" {
		return errors.New("--dir is required (or use --dev)")
	}
	cfg, err := o.config(logger)
	if err != nil {
		return err
	}
	srv, err := master.New(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "haspd: replica %s serving on %s\n", srv.ID(), srv.Addr())
	return srv.Run(ctx)
}

// devAddrs are the --dev cell's replicas.
var devAddrs = []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"}

func runDev(ctx context.Context, o *options, logger *slog.Logger, stdout io.Writer) error {
	dir := o.dir
	if dir == "" {
		dir = "hasp-dev"
	}
	var initial []string
	for i, a := range devAddrs {
		initial = append(initial, fmt.Sprintf("r%d=%s", i+1, a))
	}
	servers := make([]*master.Server, len(devAddrs))
	defer closeAll(servers)
	errs := make([]error, len(devAddrs))
	var wg sync.WaitGroup
	for i, addr := range devAddrs { // concurrently: a restart waits out a lease first
		ro := *o
		ro.id, ro.dir, ro.listen, ro.cell = fmt.Sprintf("r%d", i+1), filepath.Join(dir, fmt.Sprintf("r%d", i+1)), addr, "dev"
		ro.initial = strings.Join(initial, ",")
		cfg, err := ro.config(logger)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = master.New(cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("replica r%d: %w", i+1, err)
		}
	}
	m, err := waitMaster(ctx, servers)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hasp: cell dev ready, master %s at %s; clients use --cell %s (data in %s; Ctrl-C stops)\n",
		m.ID(), m.Addr(), strings.Join(devAddrs, ","), dir)
	<-ctx.Done()
	fmt.Fprintln(stdout, "hasp: stopping")
	return nil
}

// closeAll stops every replica at once, so none logs the others vanishing.
func closeAll(servers []*master.Server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		if s != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Close()
			}()
		}
	}
	wg.Wait()
}

func waitMaster(ctx context.Context, servers []*master.Server) (*master.Server, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, s := range servers {
			if s.IsMaster() {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("stopped before a master was elected")
		case <-tick.C:
		}
	}
}
