package fsm

import (
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/locks"
)

// Every node is a lock (DESIGN.md §7). The FSM keeps one locks.Table
// beside the namespace, mutated in place by Apply under f.mu (readers take
// f.mu.RLock). Invariants: every lock in the table is on an existing node,
// every holder and waiter belongs to a live session, and each node's
// Stat.LockGeneration equals the table's Generation for its path (0 for a
// node never locked). Setting LockGeneration copies the node but does not
// change its ModifiedRevision: a lock is not a content change.

// LockState returns a copy of the lock on path; ok is false if the path
// has never been locked (or its node was deleted since). Safe concurrently
// with Apply.
func (f *FSM) LockState(path string) (locks.Lock, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.locks.Lock(path)
}

// NextLockDeadline is when the leader should propose a LockTick: the
// earliest end of a lock-delay with a waiter queued (possibly in the past).
// ok is false if there is none. Safe concurrently with Apply.
func (f *FSM) NextLockDeadline() (int64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.locks.NextDeadline()
}

// CheckSequencer says whether seq is still current: its node is the same
// instance in the current view and its lock is held in seq.Mode at
// seq.Generation. Otherwise the error wraps locks.ErrStaleSequencer. Safe
// concurrently with Apply.
func (f *FSM) CheckSequencer(seq locks.Sequencer) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var instance uint64
	if n, ok := f.view.Load().Get(seq.Path); ok {
		instance = n.Stat.Instance
	}
	return f.locks.CheckSequencer(seq, instance)
}

// lockDelay converts and validates an Acquire's lock-delay.
func lockDelay(path string, millis int64) (time.Duration, Result, bool) {
	if millis < 0 || millis > int64(locks.MaxLockDelay/time.Millisecond) {
		return 0, fail(ErrKindBadRequest, "acquire %s: lock-delay %d ms: want 0 to %d ms",
			path, millis, locks.MaxLockDelay.Milliseconds()), false
	}
	d := time.Duration(millis) * time.Millisecond
	if err := locks.ValidateLockDelay(d); err != nil {
		return 0, failErr(err), false
	}
	return d, Result{}, true
}

func (t *txn) acquire(c *Acquire, s *session) Result {
	n, r, ok := t.lookup(c.Path, c.Instance)
	if !ok {
		return r
	}
	if s == nil {
		return fail(ErrKindBadRequest, "acquire %s: a lock needs a session", c.Path)
	}
	d, r, ok := lockDelay(c.Path, c.LockDelayMillis)
	if !ok {
		return r
	}
	req := locks.Request{Path: c.Path, Holder: locks.Holder{Session: s.id, Handle: c.Handle},
		Mode: locks.Mode(c.Mode), LockDelay: d, Wait: c.Wait}
	res, err := t.f.locks.Acquire(req, c.Meta.Time)
	grants := t.granted(res.Others)
	if err != nil {
		r := failErr(err)
		r.Grants = grants
		return r
	}
	if res.Granted {
		t.setLockGeneration(c.Path, res.Generation)
	}
	n, _ = t.get(c.Path)
	switch {
	case res.Granted && !res.Already:
		t.emitLock(fsapi.ChangeLockAcquired, c.Path, n, s.id, c.Mode)
	case res.Waiter != 0:
		t.emitLock(fsapi.ChangeLockRequested, c.Path, n, s.id, c.Mode)
	}
	return Result{Stat: n.Stat, Granted: res.Granted, Generation: res.Generation, Waiter: res.Waiter, Grants: grants}
}

func (t *txn) release(c *Release, s *session) Result {
	if _, r, ok := t.lookup(c.Path, c.Instance); !ok {
		return r
	}
	if s == nil {
		return fail(ErrKindBadRequest, "release %s: a lock needs a session", c.Path)
	}
	gs, err := t.f.locks.Release(c.Path, locks.Holder{Session: s.id, Handle: c.Handle}, c.Meta.Time)
	if err != nil {
		return failErr(err)
	}
	grants := t.granted(gs)
	n, _ := t.get(c.Path)
	return Result{Stat: n.Stat, Grants: grants}
}

func (t *txn) cancelWait(c *CancelWait, s *session) Result {
	if err := fsapi.CheckPath(c.Path); err != nil {
		return failErr(err)
	}
	if s == nil {
		return fail(ErrKindBadRequest, "cancel %s: a lock needs a session", c.Path)
	}
	// Only the session that queued a request may cancel it.
	if !t.waiterOf(c.Path, c.Waiter, s.id) {
		return fail(ErrKindNoWaiter, "%s has no waiter w%d of session %d", c.Path, c.Waiter, s.id)
	}
	gs, err := t.f.locks.Cancel(c.Path, c.Waiter, c.Meta.Time)
	if err != nil {
		return failErr(err)
	}
	grants := t.granted(gs)
	var r Result
	if n, ok := t.get(c.Path); ok {
		r.Stat = n.Stat
	}
	r.Grants = grants
	return r
}

// waiterOf says whether waiter id is queued on path by session, or holds
// it having been granted as that waiter.
func (t *txn) waiterOf(path string, id, session uint64) bool {
	l, ok := t.f.locks.Lock(path)
	if !ok || id == 0 {
		return false
	}
	for _, w := range l.Waiters {
		if w.ID == id {
			return w.Holder.Session == session
		}
	}
	for _, h := range l.Holders {
		if h.Waiter == id {
			return h.Holder.Session == session
		}
	}
	return false
}

func (t *txn) lockTick(c *LockTick) Result {
	return Result{Grants: t.granted(t.f.locks.Tick(c.Time))}
}

// granted records what a lock table operation did, in order: first a
// ChangeLockReleased event for every holding it ended, then, for each grant
// it made to a waiter, the node's LockGeneration and a ChangeLockAcquired
// event. It returns the grants as GrantInfo. Every lock table operation is
// followed by a call, so each release is reported by the entry that made it.
func (t *txn) granted(gs []locks.Grant) []GrantInfo {
	for _, r := range t.f.locks.TakeReleased() {
		n, _ := t.get(r.Path)
		t.emitLock(fsapi.ChangeLockReleased, r.Path, n, r.Holder.Session, uint8(r.Mode))
	}
	var out []GrantInfo
	for _, g := range gs {
		n := t.setLockGeneration(g.Path, g.Generation)
		t.emitLock(fsapi.ChangeLockAcquired, g.Path, n, g.Holder.Session, uint8(g.Mode))
		out = append(out, GrantInfo{Path: g.Path, Session: g.Holder.Session, Handle: g.Holder.Handle,
			Mode: uint8(g.Mode), Generation: g.Generation, Waiter: g.Waiter})
	}
	t.grants = append(t.grants, out...)
	return out
}

// checkSequencer checks an encoded sequencer that a write carries.
func (t *txn) checkSequencer(b []byte) (Result, bool) {
	seq, err := locks.ParseSequencer(b)
	if err != nil {
		return failErr(err), false
	}
	var instance uint64
	if n, ok := t.get(seq.Path); ok {
		instance = n.Stat.Instance
	}
	if err := t.f.locks.CheckSequencer(seq, instance); err != nil {
		return failErr(err), false
	}
	return Result{}, true
}

// lockedByOther refuses to delete a node whose lock another session holds:
// deleting it would end that holding without a lock-delay, so a new node
// under the name could be locked at once while the old holder still runs.
func (t *txn) lockedByOther(path string, session uint64) (Result, bool) {
	if t.multi != nil && t.multi.unlocked[path] {
		return Result{}, true // the locked node was deleted by an earlier op
	}
	l, ok := t.f.locks.Lock(path)
	if !ok {
		return Result{}, true
	}
	for _, h := range l.Holders {
		if h.Holder.Session != session {
			return fail(ErrKindHeld, "cannot delete %s: its lock is held %v by session %d (release it first)",
				path, l.Mode, h.Holder.Session), false
		}
	}
	return Result{}, true
}

// LockNotify is called after every applied command that granted locks to
// queued requests or dropped queued requests without a grant (their node
// was deleted). Grants are in the order the command made them. It runs on
// Apply's goroutine, after the new state is published: it must not block.
type LockNotify func(grants []GrantInfo, dropped []uint64)

// SetLockNotify installs fn (nil removes it). Retried writes answered from
// the exactly-once reply table do not call it again: each grant is
// notified once per replica.
func (f *FSM) SetLockNotify(fn LockNotify) {
	if fn == nil {
		f.notify.Store(nil)
		return
	}
	f.notify.Store(&fn)
}

// setLockGeneration sets the node's LockGeneration (copy-on-write) and
// returns the node as it now is (nil if there is no node, which the
// invariants rule out).
func (t *txn) setLockGeneration(path string, gen uint64) *Node {
	n, ok := t.get(path)
	if !ok || n.Stat.LockGeneration == gen {
		return n
	}
	cp := *n
	cp.Stat.LockGeneration = gen
	t.put(path, &cp)
	return &cp
}
