package cellclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/lease"
)

// maxOutstandingWrites bounds a client's concurrent writes, well under the
// number of unacknowledged answers a replica keeps per session.
const maxOutstandingWrites = 1024

// Client is a session with one cell. It is safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger

	session      uint64
	cell         string
	contentLimit int
	leaseTTL     time.Duration

	writeSem  chan struct{}
	seqs      seqTracker
	handleIDs atomic.Uint64

	// sessCtx ends when the session does (Close or expiry).
	sessCtx    context.Context
	sessCancel context.CancelFunc

	doneCh    chan struct{} // closed when the session ends (Close or expiry)
	stopKA    context.CancelFunc
	kaDone    chan struct{}
	closeOnce sync.Once

	clock  lease.Clock
	events *eventQueue
	cache  *clientCache // nil when caching is off
	// leaseEndNanos mirrors leaseEnd for the cache's lock-free check.
	leaseEndNanos atomic.Int64
	// token is the highest revision seen in any answer (follower.go).
	token atomic.Uint64
	// frServed and frMaster count follower reads answered by the read
	// replica and sent on to the master.
	frServed, frMaster atomic.Uint64

	mu         sync.Mutex // protects following fields
	cur        *conn      // connection to the replica believed to be master
	rcur       *conn      // connection to the read replica (FollowerReads)
	readPin    string     // tests: always use this read replica
	hint       string     // where the last "not master" said the master is
	next       int        // next address to try when there is no hint
	epoch      uint64
	leaseEnd   time.Time     // conservative local lease end
	state      lease.State   // safe, jeopardy or expired
	stateCh    chan struct{} // closed and replaced on every state change
	endErr     error         // why the session ended; nil while it lives
	lastMaster string
}

// Dial creates a session with the cell. It returns once the session exists,
// retrying across replicas until ctx ends.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ClientName == "" {
		cfg.ClientName = filepath.Base(os.Args[0])
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		writeSem: make(chan struct{}, maxOutstandingWrites),
		doneCh:   make(chan struct{}),
		kaDone:   make(chan struct{}),
		next:     rand.IntN(len(cfg.Addrs)),
		clock:    cfg.Clock,
		stateCh:  make(chan struct{}),
		events:   newEventQueue(),
	}
	c.sessCtx, c.sessCancel = context.WithCancel(context.Background())
	if !cfg.DisableCache && !cfg.FollowerReads {
		cc, err := newClientCache(cfg.CacheBytes)
		if err != nil {
			return nil, fmt.Errorf("cellclient: invalid config: cache: %w", err)
		}
		c.cache = cc
	}
	sent := c.clock.Now()
	var resp wire.CreateSessionResponse
	req := &wire.CreateSessionRequest{Version: wire.ProtocolVersion, ClientName: cfg.ClientName, Cell: cfg.Cell,
		Caching: c.cache != nil}
	if err := c.do(ctx, wire.MsgCreateSession, req, &resp, false); err != nil {
		c.sessCancel()
		c.dropAll()
		c.events.abandon()
		return nil, fmt.Errorf("cellclient: create session: %w", err)
	}
	c.session, c.cell, c.contentLimit = resp.Session, resp.Cell, resp.ContentLimit
	c.observe(wire.MsgCreateSession, resp.Revision)
	c.leaseTTL = time.Duration(resp.LeaseMillis) * time.Millisecond
	c.leaseEnd = lease.ClientEnd(sent, 0, c.leaseTTL, lease.DefaultEpsilon)
	c.leaseEndNanos.Store(c.leaseEnd.UnixNano())
	kaCtx, cancel := context.WithCancel(context.Background())
	c.stopKA = cancel
	go c.keepAliveLoop(kaCtx)
	return c, nil
}

// Session is the session's id.
func (c *Client) Session() uint64 { return c.session }

// Cell is the name of the cell the session is with.
func (c *Client) Cell() string { return c.cell }

// ContentLimit is the cell's largest file, in bytes.
func (c *Client) ContentLimit() int { return c.contentLimit }

// Done is closed when the session ends, by Close or by expiry.
func (c *Client) Done() <-chan struct{} { return c.doneCh }

// Err says why the session ended (fsapi.ErrSessionExpired or
// fsapi.ErrClosed), or nil while it lives.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// Master is the address of the replica that last answered as master.
func (c *Client) Master() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastMaster
}

// Close ends the session at once: its ephemeral nodes are deleted. Calls
// after Close fail with fsapi.ErrClosed.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		// The master forgets this session's cache as soon as it sees the
		// CloseSession: stop serving from it first.
		c.cache.disable()
		c.stopKA()
		<-c.kaDone
		if c.Err() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// Not c.write: that waits while the session is in jeopardy, and
			// with the KeepAlive loop stopped nothing would end it.
			var resp wire.CloseSessionResponse
			seq := c.seqs.begin()
			err = c.doWrite(ctx, wire.MsgCloseSession, seq, func(h wire.Header, w wire.WriteHeader) any {
				return &wire.CloseSessionRequest{Header: h, WriteHeader: w}
			}, &resp)
			c.seqs.end(seq)
			if errors.Is(err, fsapi.ErrSessionExpired) {
				err = nil
			}
		}
		c.end(fsapi.ErrClosed)
		c.events.abandon()
		c.dropAll()
	})
	return err
}

// end marks the session over; the first reason wins.
func (c *Client) end(reason error) {
	c.mu.Lock()
	if c.endErr != nil {
		c.mu.Unlock()
		return
	}
	c.endErr = reason
	c.setStateLocked(lease.Expired)
	close(c.doneCh)
	c.mu.Unlock()
	c.sessCancel()
	if errors.Is(reason, fsapi.ErrSessionExpired) {
		c.events.push(SessionEvent{Kind: EventExpired, Err: reason})
	}
	c.events.close()
}

func (c *Client) header() wire.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wire.Header{Session: c.session, Epoch: c.epoch}
}

// read performs a read call: at the master, or with Config.FollowerReads
// at the read replica first (follower.go).
func (c *Client) read(ctx context.Context, typ wire.MsgType, req any, resp responder) error {
	if err := c.waitUsable(ctx); err != nil {
		return err
	}
	if ro, ok := req.(readOptioner); ok && c.cfg.FollowerReads && !sequenced(req) {
		return c.readFollower(ctx, typ, ro, resp)
	}
	return c.do(ctx, typ, req, resp, false)
}

// write performs a write exactly once: it takes a sequence number, and every
// retry (at this or a new master) carries the same one, so the cell applies
// it at most once and answers a retry with the first answer.
func (c *Client) write(ctx context.Context, typ wire.MsgType, build func(wire.Header, wire.WriteHeader) any, resp responder) error {
	if err := c.waitUsable(ctx); err != nil {
		return err
	}
	select {
	case c.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.writeSem }()
	seq := c.seqs.begin()
	defer c.seqs.end(seq)
	return c.doWrite(ctx, typ, seq, build, resp)
}

func (c *Client) doWrite(ctx context.Context, typ wire.MsgType, seq uint64, build func(wire.Header, wire.WriteHeader) any, resp responder) error {
	mk := func() any { return build(c.header(), wire.WriteHeader{Seq: seq, AckBelow: c.seqs.ackBelow()}) }
	return c.retry(ctx, typ, mk, resp, true)
}

type responder interface{ Header() *wire.RespHeader }

func (c *Client) do(ctx context.Context, typ wire.MsgType, req any, resp responder, isWrite bool) error {
	return c.retry(ctx, typ, func() any { return req }, resp, isWrite)
}

// retry sends a call until it gets an answer that is not "try elsewhere":
//
//  1. Use the current master connection, or dial the next candidate.
//  2. On a transport failure, drop the connection and try the next replica.
//  3. On "not master", follow the hint (or the next replica).
//  4. On any other answer, return it.
//
// It backs off between tries and stops when ctx ends. A write whose context
// ends after a try may have reached the cell returns an *fsapi.AmbiguousError.
func (c *Client) retry(ctx context.Context, typ wire.MsgType, mk func() any, resp responder, isWrite bool) error {
	var lastErr error
	maybeSent := false
	timeout := c.cfg.AttemptTimeout
	switch typ {
	case wire.MsgKeepAlive:
		timeout = c.leaseTTL + c.cfg.AttemptTimeout
	case wire.MsgAcquire, wire.MsgLockWait, wire.MsgWatch: // the master may hold them lockHold
		timeout = lockHold + c.cfg.AttemptTimeout
	}
	for try := 0; ; try++ {
		if try > 0 {
			t := time.NewTimer(backoff(try))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return c.giveUp(ctx.Err(), lastErr, isWrite && maybeSent)
			case <-c.doneCh:
				t.Stop()
			}
			// A call in flight when the session ended stops with the
			// session's reason rather than retry forever: no replica will
			// answer for this session again.
			if end := c.Err(); end != nil {
				return c.giveUp(end, lastErr, isWrite && maybeSent)
			}
		}
		cn, err := c.connect(ctx)
		if err != nil {
			lastErr = err
			continue
		}
		*resp.Header() = wire.RespHeader{}
		req := mk()
		if hs, ok := req.(interface{ SetHeader(wire.Header) }); ok && typ != wire.MsgCreateSession {
			hs.SetHeader(c.header()) // the epoch may have changed since the last try
		}
		if ro, ok := req.(readOptioner); ok && c.cfg.FollowerReads && !isWrite {
			// A follower read that went to the master: the master, too,
			// answers from a state that has applied the token.
			ro.SetReadOptions(wire.ReadOptions{MinRevision: c.token.Load()})
		}
		err = cn.roundTrip(ctx, timeout, typ, req, resp)
		if err != nil {
			if !errors.Is(err, errNotSent) {
				maybeSent = true
			}
			if ctx.Err() != nil {
				return c.giveUp(ctx.Err(), err, isWrite && maybeSent)
			}
			if isDomainErr(err) {
				return err
			}
			lastErr = err
			c.drop(cn)
			continue
		}
		hdr := resp.Header()
		err = hdr.Err.Err()
		if tryElsewhere(err) {
			// A master that lost leadership while committing answers "not
			// master", yet the entry may still commit under its successor:
			// the outcome is unknown until a later try answers.
			maybeSent = true
			lastErr = err
			c.log.Debug("call answered: try again", "type", typ, "replica", cn.addr, "err", err)
			c.follow(cn, err)
			continue
		}
		var we *fsapi.WrongEpochError
		if errors.As(err, &we) {
			// A fail-over happened that this call is the first to see:
			// take the new epoch (telling the application) and retry.
			lastErr = err
			c.answered(cn, we.Epoch)
			continue
		}
		if errors.Is(err, fsapi.ErrBehind) {
			// The master has not applied the client's token yet (a
			// follower applied it first): ask it again.
			lastErr = err
			continue
		}
		c.answered(cn, hdr.Epoch)
		c.observe(typ, hdr.Revision)
		return err
	}
}

func (c *Client) giveUp(ctxErr, lastErr error, ambiguous bool) error {
	err := ctxErr
	if lastErr != nil {
		err = fmt.Errorf("%w (last error: %v)", ctxErr, lastErr)
	}
	if ambiguous {
		return &fsapi.AmbiguousError{Err: err}
	}
	return err
}

// tryElsewhere says whether a replica's answer means "try again, maybe at
// another replica": not master, or the cell is unavailable for now.
func tryElsewhere(err error) bool {
	var nm *fsapi.NotMasterError
	return errors.As(err, &nm) || errors.Is(err, fsapi.ErrUnavailable)
}

// isDomainErr says whether err is about the request itself, so retrying
// cannot help.
func isDomainErr(err error) bool {
	for _, e := range []error{fsapi.ErrNotExist, fsapi.ErrExist, fsapi.ErrNotEmpty, fsapi.ErrGenerationMismatch,
		fsapi.ErrTooLarge, fsapi.ErrBadName, fsapi.ErrBadRequest, fsapi.ErrSessionExpired, fsapi.ErrHandleClosed,
		fsapi.ErrHandleInvalid, fsapi.ErrPermission, fsapi.ErrNotDir, fsapi.ErrIsDir, fsapi.ErrWrongCell,
		fsapi.ErrHeld, fsapi.ErrLockDelay, fsapi.ErrNotHeld, fsapi.ErrNoWaiter, fsapi.ErrStaleSequencer,
		fsapi.ErrSequenceExhausted} {
		if errors.Is(err, e) {
			return true
		}
	}
	var we *fsapi.WrongEpochError
	return errors.As(err, &we)
}

func backoff(try int) time.Duration {
	d := 5 * time.Millisecond << min(try-1, 5) // 5 ms … 160 ms
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connect returns the connection to the believed master, dialling the
// hinted replica or the next one in Addrs if there is none.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	return c.connectTo(ctx, &c.cur, func() string {
		addr := c.hint
		c.hint = ""
		if addr == "" {
			addr = c.cfg.Addrs[c.next%len(c.cfg.Addrs)]
			c.next++
		}
		return addr
	})
}

// connectTo returns the working connection in *slot (c.cur or c.rcur), or
// dials the address pick chooses (called with c.mu held) and keeps it there.
func (c *Client) connectTo(ctx context.Context, slot **conn, pick func() string) (*conn, error) {
	c.mu.Lock()
	if cn := *slot; cn != nil && !cn.broken() {
		c.mu.Unlock()
		return cn, nil
	}
	addr := pick()
	c.mu.Unlock()
	cn, err := dial(ctx, addr, c.cfg.DialTimeout, c.cfg.localIP)
	if err != nil {
		c.log.Debug("dial failed", "addr", addr, "err", err)
		return nil, err
	}
	return c.keep(slot, cn), nil
}

// keep stores a new connection in *slot (c.cur or c.rcur) unless another
// call stored a working one there first; it returns the one to use.
func (c *Client) keep(slot **conn, cn *conn) *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *slot != nil && !(*slot).broken() {
		cn.close()
		return *slot
	}
	*slot = cn
	return cn
}

// drop forgets a connection that failed (the master's or the read
// replica's).
func (c *Client) drop(cn *conn) {
	c.mu.Lock()
	if c.cur == cn {
		c.cur = nil
	}
	if c.rcur == cn {
		c.rcur = nil
	}
	c.mu.Unlock()
	cn.close()
}

// follow reacts to "not master": remember the hint and leave this replica,
// unless the hint is this replica (it is about to become master: stay).
func (c *Client) follow(cn *conn, err error) {
	var nm *fsapi.NotMasterError
	hint := ""
	if errors.As(err, &nm) {
		hint = nm.Leader
	}
	if hint == cn.addr {
		return
	}
	c.mu.Lock()
	c.hint = hint
	c.mu.Unlock()
	c.drop(cn)
}

// answered records that the master at cn answered in epoch. A new epoch
// means a master fail-over: the application is told, since it may have
// missed events from the old master.
func (c *Client) answered(cn *conn, epoch uint64) {
	c.mu.Lock()
	old := c.epoch
	if epoch > c.epoch {
		c.epoch = epoch
	}
	c.lastMaster = cn.addr
	c.mu.Unlock()
	if epoch > old {
		// Invalidations from the old master may have been lost.
		c.cache.newEpoch(old, epoch)
	}
	if old != 0 && epoch > old {
		c.events.push(SessionEvent{Kind: EventMasterFailover, Epoch: epoch})
	}
}

func (c *Client) dropAll() {
	c.mu.Lock()
	cn, rcn := c.cur, c.rcur
	c.cur, c.rcur = nil, nil
	c.mu.Unlock()
	for _, x := range []*conn{cn, rcn} {
		if x != nil {
			x.close()
		}
	}
}

// seqTracker numbers writes and knows the lowest one still in flight.
type seqTracker struct {
	mu   sync.Mutex // protects following fields
	next uint64
	out  map[uint64]struct{}
}

func (t *seqTracker) begin() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.out == nil {
		t.out = map[uint64]struct{}{}
	}
	t.next++
	t.out[t.next] = struct{}{}
	return t.next
}

func (t *seqTracker) end(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.out, seq)
}

// ackBelow is the lowest sequence number whose answer has not arrived.
func (t *seqTracker) ackBelow() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	low := t.next + 1
	for s := range t.out {
		low = min(low, s)
	}
	return low
}
