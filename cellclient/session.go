package cellclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/lease"
)

// EventKind names a session event.
type EventKind uint8

const (
	// EventJeopardy: the local lease ran out without a KeepAlive answer.
	// Calls wait while the client hunts for a master.
	EventJeopardy EventKind = iota + 1
	// EventSafe: a master answered within the grace period; calls go on.
	EventSafe
	// EventExpired: the session is over; every later call fails with
	// fsapi.ErrSessionExpired, and its ephemeral nodes and locks are gone.
	EventExpired
	// EventMasterFailover: a new master took over. Anything learned from
	// events or caches of the old master should be re-read.
	EventMasterFailover
)

func (k EventKind) String() string {
	switch k {
	case EventJeopardy:
		return "jeopardy"
	case EventSafe:
		return "safe"
	case EventExpired:
		return "expired"
	case EventMasterFailover:
		return "master-failover"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// SessionEvent is one change in the session's life.
type SessionEvent struct {
	Kind  EventKind
	Epoch uint64 // EventMasterFailover: the new master's epoch
	Err   error  // EventExpired: why
}

// Events delivers the session's events, in order, from the first call of
// Events on. No event is dropped while the client is open: a reader that
// falls behind only delays its own delivery. The channel is closed after
// the session ends and its last event (EventExpired) was delivered, or at
// Close, which drops events not yet read.
func (c *Client) Events() <-chan SessionEvent { return c.events.channel() }

// State is the session's state: lease.Safe, lease.Jeopardy or lease.Expired.
func (c *Client) State() lease.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *Client) setStateLocked(st lease.State) {
	if c.state == st {
		return
	}
	c.state = st
	close(c.stateCh)
	c.stateCh = make(chan struct{})
	// The cache may be stale once the local lease is over: the master no
	// longer waits for this client before it applies a change.
	if st == lease.Safe {
		c.cache.enable()
	} else {
		c.cache.disable()
	}
}

// waitUsable returns nil when calls may be made: at once while the session
// is safe; in jeopardy it waits for safe, expiry or ctx.
func (c *Client) waitUsable(ctx context.Context) error {
	for {
		c.mu.Lock()
		st, ch, end := c.state, c.stateCh, c.endErr
		c.mu.Unlock()
		if end != nil {
			return end
		}
		if st == lease.Safe {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("session in jeopardy: %w", ctx.Err())
		}
	}
}

type kaResult struct {
	sent time.Time
	resp wire.KeepAliveResponse
	err  error
}

// keepAliveLoop keeps one KeepAlive outstanding at all times and drives the
// session's state:
//
//  1. Send a KeepAlive (retried, at any replica, until the grace period
//     ends); meanwhile watch the local lease.
//  2. Local lease over with no answer: jeopardy (calls wait).
//  3. Answer: extend the local lease conservatively (send time + the time
//     the master held the call + the lease, shrunk by the clock-rate
//     bound); back to safe if in jeopardy; loop.
//  4. Grace period over, or the master says the session is gone: expired.
func (c *Client) keepAliveLoop(ctx context.Context) {
	defer close(c.kaDone)
	results := make(chan kaResult, 1)
	// One goroutine sends every KeepAlive, one at a time: a goroutine
	// started per KeepAlive grew (copied) its stack in msgpack's decoder
	// every time: runtime.copystack was 6% of the CPU of a process whose
	// 1,000 sessions acknowledged invalidations. Each call delivers exactly
	// one result, into the buffer of one, so the sender never blocks on it.
	calls := make(chan context.Context)
	defer close(calls)
	go func() {
		for callCtx := range calls {
			c.sendKeepAlive(callCtx, results)
		}
	}()
	for {
		callCtx, cancel := context.WithCancel(ctx)
		calls <- callCtx
		r, ok := c.awaitKeepAlive(ctx, results)
		cancel()
		if !ok {
			if ctx.Err() == nil {
				c.expire(fmt.Errorf("%w: session %d: no master answered within the grace period", fsapi.ErrSessionExpired, c.session))
			}
			return
		}
		switch {
		case r.err == nil:
			// Apply invalidations before the next KeepAlive acknowledges them.
			c.cache.invalidate(r.resp.Invalidations, r.resp.Epoch)
			c.renewed(r.sent, r.resp)
		case errors.Is(r.err, fsapi.ErrSessionExpired):
			c.expire(fmt.Errorf("%w: session %d: %v", fsapi.ErrSessionExpired, c.session, r.err))
			return
		case ctx.Err() != nil:
			return
		default:
			c.log.Debug("keepalive failed", "err", r.err)
			if sleepCtx(ctx, 50*time.Millisecond) != nil {
				return
			}
		}
	}
}

func (c *Client) sendKeepAlive(ctx context.Context, out chan<- kaResult) {
	var sent time.Time
	var resp wire.KeepAliveResponse
	// mk runs just before each attempt: the lease is measured from the send
	// time of the attempt that was answered, not of the first try.
	mk := func() any {
		sent = c.clock.Now()
		ack, ackEpoch, flushed := c.cache.keepAliveFields()
		return &wire.KeepAliveRequest{Header: c.header(), InvalAck: ack, InvalAckEpoch: ackEpoch, FlushedEpoch: flushed}
	}
	err := c.retry(ctx, wire.MsgKeepAlive, mk, &resp, false)
	out <- kaResult{sent: sent, resp: resp, err: err}
}

// awaitKeepAlive waits for the KeepAlive's result while moving the session
// into jeopardy when the local lease runs out. It reports false when the
// grace period ended first (or ctx did).
func (c *Client) awaitKeepAlive(ctx context.Context, results <-chan kaResult) (kaResult, bool) {
	for {
		c.mu.Lock()
		at := c.leaseEnd
		if c.state == lease.Jeopardy {
			at = lease.GraceEnd(c.leaseEnd, c.cfg.GracePeriod)
		}
		c.mu.Unlock()
		t := c.clock.NewTimer(at.Sub(c.clock.Now()))
		select {
		case r := <-results:
			t.Stop()
			return r, true
		case <-ctx.Done():
			t.Stop()
			return kaResult{}, false
		case <-t.C():
		}
		if c.checkLease() == lease.Expired {
			return kaResult{}, false
		}
	}
}

// checkLease moves the session to jeopardy when its local lease is over
// and returns its state now.
func (c *Client) checkLease() lease.State {
	c.mu.Lock()
	st := lease.ClientState(c.clock.Now(), c.leaseEnd, c.cfg.GracePeriod)
	entered := st == lease.Jeopardy && c.state == lease.Safe
	if st != lease.Expired {
		c.setStateLocked(st)
	}
	c.mu.Unlock()
	if entered {
		c.log.Warn("session in jeopardy", "session", c.session)
		c.events.push(SessionEvent{Kind: EventJeopardy})
	}
	return st
}

// renewed applies a KeepAlive answer.
func (c *Client) renewed(sent time.Time, resp wire.KeepAliveResponse) {
	end := lease.ClientEnd(sent, time.Duration(resp.HeldMillis)*time.Millisecond,
		time.Duration(resp.LeaseMillis)*time.Millisecond, lease.DefaultEpsilon)
	c.mu.Lock()
	if end.After(c.leaseEnd) {
		c.leaseEnd = end
		c.leaseEndNanos.Store(end.UnixNano())
	}
	wasJeopardy := c.state == lease.Jeopardy
	if c.clock.Now().Before(c.leaseEnd) {
		c.setStateLocked(lease.Safe)
	}
	safe := wasJeopardy && c.state == lease.Safe
	c.mu.Unlock()
	if safe {
		c.log.Info("session safe again", "session", c.session)
		c.events.push(SessionEvent{Kind: EventSafe})
	}
}

func (c *Client) expire(reason error) {
	c.log.Warn("session expired", "session", c.session, "err", reason)
	c.end(reason)
	c.dropAll()
}

// eventQueue delivers events in order without ever blocking the pusher.
// It queues only once someone asked for the channel (Events), and its
// goroutine exits when the queue is closed and drained, or abandoned by
// Client.Close.
type eventQueue struct {
	out       chan SessionEvent
	abandonCh chan struct{}
	wake      chan struct{}

	mu        sync.Mutex // protects following fields
	queue     []SessionEvent
	enabled   bool
	closed    bool
	abandoned bool
}

func newEventQueue() *eventQueue {
	q := &eventQueue{out: make(chan SessionEvent), wake: make(chan struct{}, 1), abandonCh: make(chan struct{})}
	go q.run()
	return q
}

// channel enables queueing and returns the delivery channel.
func (q *eventQueue) channel() <-chan SessionEvent {
	q.mu.Lock()
	q.enabled = true
	q.mu.Unlock()
	return q.out
}

func (q *eventQueue) push(e SessionEvent) {
	q.mu.Lock()
	if q.enabled && !q.closed {
		q.queue = append(q.queue, e)
	}
	q.mu.Unlock()
	q.poke()
}

// close stops queueing; out is closed once the queue drains.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.poke()
}

// abandon drops undelivered events and ends delivery at once.
func (q *eventQueue) abandon() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if !q.abandoned {
		q.abandoned = true
		close(q.abandonCh)
	}
}

func (q *eventQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) run() {
	defer close(q.out)
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-q.wake:
			case <-q.abandonCh:
				return
			}
			continue
		}
		e := q.queue[0]
		q.queue = q.queue[1:]
		q.mu.Unlock()
		select {
		case q.out <- e:
		case <-q.abandonCh:
			return
		}
	}
}
