package cellclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/lease"
	"github.com/haspcell/hasp/locks"
)

// Lock modes.
const (
	Exclusive = locks.Exclusive
	Shared    = locks.Shared
)

// Sequencer names one holding of a lock (see Handle.GetSequencer).
type Sequencer = locks.Sequencer

// DefaultLockDelay and MaxLockDelay bound OpenOptions.LockDelay.
const (
	DefaultLockDelay = locks.DefaultLockDelay
	MaxLockDelay     = locks.MaxLockDelay
)

// LockDelay returns a pointer to d, for OpenOptions.LockDelay.
func LockDelay(d time.Duration) *time.Duration { return &d }

// lockHold is how long the master may hold one Acquire or LockWait call
// waiting for a grant (it caps it at 20 s); the client then asks again.
const lockHold = 15 * time.Second

// cleanupTimeout bounds each step of withdrawing an abandoned Acquire.
const cleanupTimeout = 30 * time.Second

// lockState is a handle's view of its lock. Guarded by Handle.mu.
type lockState struct {
	held       bool
	mode       locks.Mode
	generation uint64
	acquiring  bool
	// cleanup is closed when an abandoned Acquire has been withdrawn (or
	// the session ended); nil when there is none.
	cleanup chan struct{}
}

// Acquire takes the node's lock in mode (Exclusive or Shared), waiting
// until it is granted or ctx ends. Requests are granted in the order they
// reached the master; shared requests at the head of the queue are granted
// together. If ctx ends first, the request is withdrawn: the handle does
// not hold the lock afterwards (a grant that crossed the cancellation is
// released) and Acquire returns ctx's error.
//
// Acquire survives a master fail-over: the request lives in the cell's
// replicated state and the client asks the new master about it.
func (h *Handle) Acquire(ctx context.Context, mode locks.Mode) error {
	return h.acquire(ctx, mode, true)
}

// TryAcquire takes the lock only if it can be granted at once. Otherwise
// it fails with an error wrapping fsapi.ErrHeld (held in a conflicting
// mode, or requests are queued ahead) or fsapi.ErrLockDelay (free, but a
// holder was lost recently and its lock-delay runs).
func (h *Handle) TryAcquire(ctx context.Context, mode locks.Mode) error {
	return h.acquire(ctx, mode, false)
}

func (h *Handle) acquire(ctx context.Context, mode locks.Mode, wait bool) error {
	if !mode.Valid() {
		return fmt.Errorf("acquire %s: %w: lock mode %v (want Exclusive or Shared)", h.name, fsapi.ErrBadRequest, mode)
	}
	return h.call(ctx, "acquire", func(ctx context.Context) error {
		if err := h.beginAcquire(ctx); err != nil {
			return err
		}
		gen, m, err := h.runAcquire(ctx, mode, wait)
		h.mu.Lock()
		h.lk.acquiring = false
		if err == nil {
			h.lk.held, h.lk.mode, h.lk.generation = true, m, gen
		}
		h.mu.Unlock()
		return err
	})
}

// beginAcquire waits out any earlier abandoned Acquire's withdrawal and
// marks an Acquire in progress.
func (h *Handle) beginAcquire(ctx context.Context) error {
	for {
		h.mu.Lock()
		switch {
		case h.lk.held:
			h.mu.Unlock()
			return fmt.Errorf("%w: the handle already holds the lock %v; release it first", fsapi.ErrBadRequest, h.lk.mode)
		case h.lk.acquiring:
			h.mu.Unlock()
			return fmt.Errorf("%w: another Acquire on this handle is in progress; use one handle per lock holder", fsapi.ErrBadRequest)
		case h.lk.cleanup != nil:
			ch := h.lk.cleanup
			h.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		h.lk.acquiring = true
		h.mu.Unlock()
		return nil
	}
}

// runAcquire sends the Acquire (a write, retried exactly-once under one
// sequence number) and then, while the request is queued, LockWait calls
// (reads). If ctx ends before a grant, it leaves the withdrawal to
// abandon, which keeps the sequence number open until it is done.
func (h *Handle) runAcquire(ctx context.Context, mode locks.Mode, wait bool) (uint64, locks.Mode, error) {
	c := h.c
	if err := c.waitUsable(ctx); err != nil {
		return 0, 0, err
	}
	select {
	case c.writeSem <- struct{}{}:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	seq := c.seqs.begin()
	// HoldMillis 0: the master answers the write at once (granted, or
	// queued with a waiter id) and the wait is done with LockWait reads. A
	// write held open would keep its sequence number outstanding, and the
	// session's reply table could not be pruned past it for the whole wait.
	build := func(hd wire.Header, w wire.WriteHeader) any {
		return &wire.AcquireRequest{Header: hd, WriteHeader: w, NodeRef: h.ref, Handle: h.id, Mode: uint8(mode),
			LockDelayMillis: h.lockDelay.Milliseconds(), Wait: wait}
	}
	var resp wire.AcquireResponse
	err := c.doWrite(ctx, wire.MsgAcquire, seq, build, &resp)
	<-c.writeSem
	switch {
	case err == nil && resp.Granted:
		c.seqs.end(seq)
		return resp.Generation, locks.Mode(resp.Mode), nil
	case err == nil:
		// Queued: wait below. The write is answered, so its sequence
		// number is done with (holding it open would stop the session's
		// reply table from being pruned for as long as the wait lasts).
		c.seqs.end(seq)
	case ctx.Err() != nil:
		// The request may or may not have reached the cell.
		h.abandon(seq, build, 0)
		return 0, 0, err
	default:
		c.seqs.end(seq)
		return 0, 0, err
	}
	waiter := resp.Waiter
	for {
		var wr wire.AcquireResponse
		err := c.read(ctx, wire.MsgLockWait, &wire.LockWaitRequest{Header: c.header(), NodeRef: h.ref,
			Handle: h.id, Waiter: waiter, HoldMillis: lockHold.Milliseconds()}, &wr)
		switch {
		case err == nil && wr.Granted:
			return wr.Generation, locks.Mode(wr.Mode), nil
		case err == nil:
			continue
		case ctx.Err() != nil:
			h.abandon(0, nil, waiter)
			return 0, 0, err
		default:
			return 0, 0, err
		}
	}
}

// abandon withdraws an Acquire whose caller gave up, in the background:
//
//  1. If the request's waiter id is unknown (waiter 0), re-send the same
//     Acquire (build, under its still-open sequence number seq, so it is
//     applied at most once) to learn how it stands; this may queue it now.
//  2. Granted at once: release. Queued (or granted since): CancelWait,
//     which releases a grant that crossed the cancellation.
//
// Later Acquires on the handle wait until this is done (or the session
// ends).
func (h *Handle) abandon(seq uint64, build func(wire.Header, wire.WriteHeader) any, waiter uint64) {
	c := h.c
	done := make(chan struct{})
	h.mu.Lock()
	h.lk.cleanup = done
	h.mu.Unlock()
	go func() {
		defer func() {
			if seq != 0 {
				c.seqs.end(seq)
			}
			h.mu.Lock()
			h.lk.cleanup = nil
			h.mu.Unlock()
			close(done)
		}()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop := context.AfterFunc(c.sessCtx, cancel)
		defer stop()
		for attempt := 0; ctx.Err() == nil; attempt++ {
			if attempt > 0 {
				sleepCtx(ctx, time.Second)
			}
			err := h.withdraw(ctx, seq, build, waiter)
			if err == nil || isDomainErr(err) || errors.Is(err, fsapi.ErrNoWaiter) || errors.Is(err, fsapi.ErrNotHeld) {
				return
			}
			c.log.Warn("withdrawing an abandoned lock request failed; retrying", "name", h.name, "err", err)
		}
	}()
}

func (h *Handle) withdraw(ctx context.Context, seq uint64, build func(wire.Header, wire.WriteHeader) any, waiter uint64) error {
	c := h.c
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	if waiter == 0 {
		var resp wire.AcquireResponse
		err := c.doWrite(ctx, wire.MsgAcquire, seq, build, &resp)
		switch {
		case err != nil:
			return err
		case resp.Granted:
			return c.write(ctx, wire.MsgRelease, func(hd wire.Header, w wire.WriteHeader) any {
				return &wire.ReleaseRequest{Header: hd, WriteHeader: w, NodeRef: h.ref, Handle: h.id}
			}, &wire.ReleaseResponse{})
		}
		waiter = resp.Waiter
	}
	return c.write(ctx, wire.MsgCancelWait, func(hd wire.Header, w wire.WriteHeader) any {
		return &wire.CancelWaitRequest{Header: hd, WriteHeader: w, Path: h.ref.Path, Waiter: waiter}
	}, &wire.CancelWaitResponse{})
}

// Release gives up the handle's lock. The next queued request(s) are
// granted in the same step. Release never starts a lock-delay. It fails
// with fsapi.ErrNotHeld if the handle does not hold the lock.
func (h *Handle) Release(ctx context.Context) error {
	return h.call(ctx, "release", func(ctx context.Context) error { return h.release(ctx) })
}

func (h *Handle) release(ctx context.Context) error {
	h.mu.Lock()
	held := h.lk.held
	h.mu.Unlock()
	if !held {
		return fmt.Errorf("%w: this handle does not hold the lock", fsapi.ErrNotHeld)
	}
	var resp wire.ReleaseResponse
	err := h.c.write(ctx, wire.MsgRelease, func(hd wire.Header, w wire.WriteHeader) any {
		return &wire.ReleaseRequest{Header: hd, WriteHeader: w, NodeRef: h.ref, Handle: h.id}
	}, &resp)
	var amb *fsapi.AmbiguousError
	if err == nil || !errors.As(err, &amb) {
		// Released, or not held at the master any more (session or node
		// gone): either way the handle holds nothing now.
		h.mu.Lock()
		h.lk.held = false
		h.mu.Unlock()
	}
	if errors.Is(err, fsapi.ErrNotHeld) {
		err = fmt.Errorf("%w: the master says this handle no longer holds it (its session or node ended)", err)
	}
	return err
}

// GetSequencer returns the sequencer for the handle's current holding of
// the lock: the node's path and instance, the mode and the lock
// generation. Hand it (Encode, or String for a printable form) to servers
// that must reject requests from a holder that lost the lock; they check it
// with Client.CheckSequencer or a locks.Fence. It costs no RPC. It fails
// with fsapi.ErrNotHeld if the handle does not hold the lock.
func (h *Handle) GetSequencer() (Sequencer, error) {
	if err := h.c.Err(); err != nil {
		return Sequencer{}, fmt.Errorf("sequencer %s: %w", h.name, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lk.held {
		return Sequencer{}, fmt.Errorf("sequencer %s: %w", h.name, fsapi.ErrNotHeld)
	}
	return Sequencer{Path: h.ref.Path, Instance: h.ref.Instance, Mode: h.lk.mode, Generation: h.lk.generation}, nil
}

// SetSequencer ties the handle to a sequencer (typically one a lock holder
// sent this process): every later read or write on the handle fails with
// an error wrapping fsapi.ErrStaleSequencer once the sequencer is no longer
// current (writes check it atomically with their application). The
// handle's own lock calls (Acquire, Release) do not carry it. A zero
// Sequencer removes it.
func (h *Handle) SetSequencer(seq Sequencer) {
	var b []byte
	if seq != (Sequencer{}) {
		b = seq.Encode()
	}
	h.mu.Lock()
	h.seqBytes = b
	h.mu.Unlock()
}

// nodeRef is the handle's node reference with its sequencer.
func (h *Handle) nodeRef() wire.NodeRef {
	h.mu.Lock()
	defer h.mu.Unlock()
	ref := h.ref
	ref.Sequencer = h.seqBytes
	return ref
}

// CheckSequencer asks the master whether seq is still current: its node is
// the same instance and its lock is still held in seq's mode at seq's
// generation. A stale sequencer fails with an error wrapping
// fsapi.ErrStaleSequencer that says what changed.
func (c *Client) CheckSequencer(ctx context.Context, seq Sequencer) error {
	var resp wire.CheckSequencerResponse
	if err := c.read(ctx, wire.MsgCheckSequencer, &wire.CheckSequencerRequest{Header: c.header(), Sequencer: seq.Encode()}, &resp); err != nil {
		return fmt.Errorf("check sequencer %v: %w", seq, err)
	}
	return nil
}

// LockInfo describes a node's lock as the master sees it.
type LockInfo struct {
	Mode       locks.Mode // 0: free
	Generation uint64
	// DelayUntil is when a running lock-delay ends (zero if none).
	DelayUntil time.Time
	Holders    []LockOwner
	// Waiters lists the first queued requests (at most 100), head first;
	// WaiterCount counts them all.
	Waiters     []LockOwner
	WaiterCount int
}

// LockOwner is one holder or queued request: a handle of a session.
type LockOwner struct {
	Session uint64
	Handle  uint64
	Mode    locks.Mode
}

// GetLock reads the state of the node's lock.
func (h *Handle) GetLock(ctx context.Context) (LockInfo, error) {
	var resp wire.GetLockResponse
	err := h.call(ctx, "lock state", func(ctx context.Context) error {
		return h.c.read(ctx, wire.MsgGetLock, &wire.GetLockRequest{Header: h.c.header(), NodeRef: h.nodeRef()}, &resp)
	})
	if err != nil {
		return LockInfo{}, err
	}
	info := LockInfo{Mode: locks.Mode(resp.Mode), Generation: resp.Generation, WaiterCount: resp.WaiterCount}
	if resp.DelayUntilMillis > 0 {
		info.DelayUntil = time.UnixMilli(resp.DelayUntilMillis)
	}
	for _, o := range resp.Holders {
		info.Holders = append(info.Holders, LockOwner{Session: o.Session, Handle: o.Handle, Mode: locks.Mode(o.Mode)})
	}
	for _, o := range resp.Waiters {
		info.Waiters = append(info.Waiters, LockOwner{Session: o.Session, Handle: o.Handle, Mode: locks.Mode(o.Mode)})
	}
	return info, nil
}

// StateChange returns the session's state and a channel that is closed at
// its next change (safe ↔ jeopardy, or expired). It lets a lock holder act
// the moment its session enters jeopardy, when it can no longer be sure it
// still holds its locks.
func (c *Client) StateChange() (lease.State, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.stateCh
}
