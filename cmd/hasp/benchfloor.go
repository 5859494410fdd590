package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/fsapi/wire"
)

// floorTransports are what bench floor measures, in the order it runs them.
var floorTransports = []string{"tcp", "yamux", "yamux+msgpack"}

// floorOptions are bench floor's flags.
type floorOptions struct {
	sessions, rounds, size int
	transports             []string
	inProcess              bool
	// dial and transport (hidden) make this process the peer side of one
	// transport's run, against the measuring process at dial.
	dial, transport string
}

func (o *floorOptions) validate() error {
	switch {
	case o.sessions < 1:
		return usagef("--sessions %d: must be at least 1", o.sessions)
	case o.rounds < 1:
		return usagef("--rounds %d: must be at least 1", o.rounds)
	case o.size < 1 || o.size > 64<<10:
		return usagef("--size %d: want 1 to 65536", o.size)
	}
	for _, t := range o.transports {
		if !slices.Contains(floorTransports, t) {
			return usagef("--transport %q: want %s", t, strings.Join(floorTransports, ", "))
		}
	}
	return nil
}

// benchFloorCmd is `hasp bench floor`. It needs no cell.
func (a *app) benchFloorCmd(bo *benchOptions) *cobra.Command {
	o := &floorOptions{}
	cmd := &cobra.Command{
		Use:   "floor",
		Short: "Measure this machine's floor for an invalidation fan-out (no cell needed)",
		Long: "floor measures what a fan-out like an invalidation's costs on this machine with\n" +
			"nothing of hasp in the way, to judge bench invalidate's figures against. This\n" +
			"process accepts --sessions loopback TCP connections from a peer process (this\n" +
			"program again, started by floor; --in-process keeps the peer in this process).\n" +
			"A round sends one message on every connection at once and ends when every\n" +
			"peer has answered, as a write waits for every caching session's\n" +
			"acknowledgement. It runs --rounds rounds per transport (after three not\n" +
			"counted), 20 ms apart:\n\n" +
			"  tcp            --size bytes each way on the bare connection\n" +
			"  yamux          the same on a yamux stream, set up as hasp's clients and\n" +
			"                 replicas set it up (each frame sent with one write)\n" +
			"  yamux+msgpack  a KeepAlive reply carrying one invalidation and the next\n" +
			"                 KeepAlive request, in hasp's framing, on a yamux stream\n\n" +
			"It prints each transport's round latency percentiles. The cell adds Raft,\n" +
			"the session and cache bookkeeping, and five replicas sharing the CPU.",
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			o.size = bo.size
			if err := o.validate(); err != nil {
				return err
			}
			if o.dial != "" {
				return floorPeer(ctx, o.dial, o.transport, o.sessions, o.size)
			}
			return a.benchFloor(ctx, *o)
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.sessions, "sessions", 1000, "connections, each answering every round")
	f.IntVar(&o.rounds, "rounds", 100, "timed rounds per transport")
	f.StringSliceVar(&o.transports, "transport", floorTransports, "transports to measure: "+strings.Join(floorTransports, ", "))
	f.BoolVar(&o.inProcess, "in-process", false, "run the peer side in this process instead of another")
	f.StringVar(&o.dial, "dial", "", "be the peer side of a run, against this address")
	f.StringVar(&o.transport, "peer-transport", "tcp", "with --dial: the run's transport")
	f.MarkHidden("dial")
	f.MarkHidden("peer-transport")
	return cmd
}

// floorResult is one transport's result, as printed with --json.
type floorResult struct {
	Workload  string  `json:"workload"`
	Transport string  `json:"transport"`
	Sessions  int     `json:"sessions"`
	Size      int     `json:"size"`
	Peer      string  `json:"peer"` // "process" or "in-process"
	Rounds    int     `json:"rounds"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// PerSessionUs is the median round divided by the sessions.
	PerSessionUs float64 `json:"per_session_us"`
}

func (a *app) benchFloor(ctx context.Context, o floorOptions) error {
	var results []floorResult
	for _, tr := range o.transports {
		lat, err := a.floorRun(ctx, o, tr)
		if err != nil {
			return fmt.Errorf("bench floor: %s: %w", tr, err)
		}
		slices.Sort(lat)
		r := floorResult{Workload: "floor", Transport: tr, Sessions: o.sessions, Size: o.size, Peer: "process",
			Rounds: len(lat), P50Ms: ms(quantile(lat, 0.5)), P90Ms: ms(quantile(lat, 0.9)),
			P99Ms: ms(quantile(lat, 0.99)), MaxMs: ms(lat[len(lat)-1])}
		if o.inProcess {
			r.Peer = "in-process"
		}
		r.PerSessionUs = r.P50Ms * 1000 / float64(o.sessions)
		results = append(results, r)
	}
	if a.json {
		for _, r := range results {
			if err := a.emit(r); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Fprintf(a.stdout, "bench floor: %d connections, %d-byte messages, peer %s, %d rounds each\n",
		o.sessions, o.size, results[0].Peer, o.rounds)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSPORT\tP50\tP90\tP99\tMAX\tPER SESSION (P50)")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f µs\n", r.Transport, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.PerSessionUs)
	}
	return tw.Flush()
}

// floorWarmup rounds run before the timed ones.
const floorWarmup = 3

// floorSetupTimeout bounds connecting every session, and one round.
const floorSetupTimeout = 60 * time.Second

// floorRun measures one transport: it starts the peer side, accepts its
// connections and times the rounds.
func (a *app) floorRun(ctx context.Context, o floorOptions, tr string) ([]time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	addr := ln.Addr().String()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	peerErr := make(chan error, 1)
	if o.inProcess {
		go func() { peerErr <- floorPeer(ctx, addr, tr, o.sessions, o.size) }()
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, exe, "bench", "floor", "--dial", addr, "--peer-transport", tr,
			"--sessions", strconv.Itoa(o.sessions), "--size", strconv.Itoa(o.size))
		cmd.Stdout, cmd.Stderr = io.Discard, a.stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() { peerErr <- cmd.Wait() }()
	}

	var ends []*floorEnd
	defer func() {
		for _, e := range ends {
			e.close()
		}
		cancel()
		<-peerErr
	}()
	accepted := make(chan error, 1)
	go func() {
		for len(ends) < o.sessions {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			e, err := newFloorEnd(c, tr, true, o.size)
			if err != nil {
				accepted <- err
				return
			}
			ends = append(ends, e)
		}
		accepted <- nil
	}()
	// abort stops the peer and the accepting, and returns err.
	abort := func(err error) ([]time.Duration, error) {
		cancel()
		ln.Close()
		<-accepted
		return nil, err
	}
	select {
	case err := <-accepted:
		if err != nil {
			return nil, err
		}
	case err := <-peerErr:
		return abort(fmt.Errorf("peer side ended while connecting: %v", err))
	case <-time.After(floorSetupTimeout):
		return abort(errors.New("peer side did not connect in time"))
	case <-ctx.Done():
		return abort(ctx.Err())
	}

	// One goroutine per connection waits for its round's signal, sends,
	// and reads the answer, as a master's held KeepAlive would.
	done := make(chan error, o.sessions)
	starts := make([]chan struct{}, len(ends))
	for i, e := range ends {
		starts[i] = make(chan struct{}, 1)
		go func() {
			for range starts[i] {
				done <- e.exchange()
			}
		}()
	}
	defer func() {
		for _, ch := range starts {
			close(ch)
		}
	}()
	var lat []time.Duration
	for round := range floorWarmup + o.rounds {
		t0 := time.Now()
		for _, ch := range starts {
			ch <- struct{}{}
		}
		timeout := time.After(floorSetupTimeout)
		for range ends {
			select {
			case err := <-done:
				if err != nil {
					return nil, err
				}
			case <-timeout:
				return nil, errors.New("a round did not end in time")
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if round >= floorWarmup {
			lat = append(lat, time.Since(t0))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return lat, nil
}

// floorEnd is one end of one connection of a floor run.
type floorEnd struct {
	c    net.Conn
	sess *yamux.Session // nil for tcp
	rw   io.ReadWriter
	br   *bufio.Reader // reads rw
	tr   string
	buf  []byte
}

// floorYamuxConfig is hasp's yamux set-up without its pings, which would
// only add noise to a run this short.
func floorYamuxConfig() *yamux.Config {
	yc := yamux.DefaultConfig()
	yc.EnableKeepAlive = false
	yc.LogOutput = io.Discard
	return yc
}

// newFloorEnd sets up one end: the peer (server false) opens the stream
// and sends one byte so that the measuring side can accept it.
func newFloorEnd(c net.Conn, tr string, server bool, size int) (*floorEnd, error) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	e := &floorEnd{c: c, rw: c, tr: tr, buf: make([]byte, size)}
	if tr != "tcp" {
		var err error
		var st *yamux.Stream
		if server {
			e.sess, err = yamux.Server(wire.CoalesceFrames(c), floorYamuxConfig())
			if err == nil {
				st, err = e.sess.AcceptStream()
			}
		} else {
			e.sess, err = yamux.Client(wire.CoalesceFrames(c), floorYamuxConfig())
			if err == nil {
				st, err = e.sess.OpenStream()
			}
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		e.rw = st
	}
	hello := []byte{1}
	var err error
	if server {
		_, err = io.ReadFull(e.rw, hello)
	} else {
		_, err = e.rw.Write(hello)
	}
	if err != nil {
		e.close()
		return nil, err
	}
	e.br = wire.NewReader(e.rw)
	return e, nil
}

func (e *floorEnd) close() {
	if e.sess != nil {
		e.sess.Close()
	}
	e.c.Close()
}

// floorReply and floorRequest stand for a KeepAlive reply that carries an
// invalidation and the KeepAlive that acknowledges it.
var (
	floorReply = wire.KeepAliveResponse{LeaseMillis: 12000, HeldMillis: 3456,
		Invalidations: []wire.Invalidation{{Path: "/ls/local/bench-inval/20261206-120000-abcd", Revision: 123456, Seq: 42}}}
	floorRequest = wire.KeepAliveRequest{Header: wire.Header{Session: 123456789, Epoch: 7}, InvalAck: 42, InvalAckEpoch: 7}
)

// exchange is one round at the measuring end: send, then read the answer.
func (e *floorEnd) exchange() error {
	if e.tr == "yamux+msgpack" {
		if err := wire.WriteFrame(e.rw, wire.MsgKeepAlive, &floorReply); err != nil {
			return err
		}
		_, body, err := wire.ReadFrame(e.br, wire.MaxFrame)
		if err != nil {
			return err
		}
		var req wire.KeepAliveRequest
		return wire.Decode(body, &req)
	}
	if _, err := e.rw.Write(e.buf); err != nil {
		return err
	}
	_, err := io.ReadFull(e.br, e.buf)
	return err
}

// answer is one round at the peer end: read, then answer.
func (e *floorEnd) answer() error {
	if e.tr == "yamux+msgpack" {
		_, body, err := wire.ReadFrame(e.br, wire.MaxFrame)
		if err != nil {
			return err
		}
		var resp wire.KeepAliveResponse
		if err := wire.Decode(body, &resp); err != nil {
			return err
		}
		return wire.WriteFrame(e.rw, wire.MsgKeepAlive, &floorRequest)
	}
	if _, err := io.ReadFull(e.br, e.buf); err != nil {
		return err
	}
	_, err := e.rw.Write(e.buf)
	return err
}

// floorPeer is the peer side of a run: sessions connections to addr, each
// answering every message until the measuring side closes it.
func floorPeer(ctx context.Context, addr, tr string, sessions, size int) error {
	if !slices.Contains(floorTransports, tr) {
		return usagef("--peer-transport %q: want %s", tr, strings.Join(floorTransports, ", "))
	}
	var d net.Dialer
	var wg sync.WaitGroup
	var ends []*floorEnd
	defer func() {
		for _, e := range ends {
			e.close()
		}
		wg.Wait()
	}()
	for range sessions {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		e, err := newFloorEnd(c, tr, false, size)
		if err != nil {
			return err
		}
		ends = append(ends, e)
	}
	for _, e := range ends {
		wg.Go(func() {
			for e.answer() == nil {
			}
		})
	}
	// Run until every connection ended (the measuring side closed them) or
	// ctx did.
	idle := make(chan struct{})
	go func() { wg.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-ctx.Done():
	}
	return nil
}
