package locks

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haspcell/hasp/fsapi"
)

// Table is every lock of a cell, keyed by node path. It is not safe for
// concurrent use: the FSM calls it from Apply (one goroutine) and guards
// any other reader itself. The zero value is not usable; call NewTable.
//
// Every instant is a parameter (now, Unix nanoseconds, as stamped by the
// leader). It need not be monotonic across calls: a clock that steps back
// only makes lock-delays last longer.
type Table struct {
	locks      map[string]*Lock
	lastWaiter uint64
	// Derived state, rebuilt by Restore and never snapshotted:
	sessions map[uint64]map[string]int // session → path → holds + waits there
	delayed  map[string]struct{}       // free locks whose queue waits out a lock-delay
	// released lists the holdings that ended since the last TakeReleased,
	// if report is set (transient: never snapshotted, off after Restore).
	report   bool
	released []Released
}

// Released is one holding that ended: released, cancelled after its
// grant, or dropped with its session or handle.
type Released struct {
	Path   string
	Holder Holder
	Mode   Mode
	// Lost: the holding ended because its session or handle was lost,
	// so a lock-delay may run; false when its owner gave it up.
	Lost bool
}

// ReportReleases makes the table list the holdings that end, for
// TakeReleased. A caller that turns it on must take them after every
// operation (hasp's state machine emits an event for each).
func (t *Table) ReportReleases() { t.report = true }

// TakeReleased returns the holdings that ended since the last call, in the
// order they ended, and forgets them.
func (t *Table) TakeReleased() []Released {
	out := t.released
	t.released = nil
	return out
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{
		locks:    map[string]*Lock{},
		sessions: map[uint64]map[string]int{},
		delayed:  map[string]struct{}{},
	}
}

// Lock returns a copy of the lock on path. ok is false for a path that has
// never been locked (or was deleted since): it is free, at generation 0.
func (t *Table) Lock(path string) (l Lock, ok bool) {
	p, ok := t.locks[path]
	if !ok {
		return Lock{Path: path}, false
	}
	return p.clone(), true
}

// Generation is the lock generation of path (0 if never locked).
func (t *Table) Generation(path string) uint64 {
	if l, ok := t.locks[path]; ok {
		return l.Generation
	}
	return 0
}

// Acquire asks for a lock. It first settles the lock at now (granting
// waiters whose lock-delay has ended: Result.Others), then grants the
// request at once if nobody is queued ahead, the mode is compatible with the
// holders and no lock-delay is running. Otherwise it queues the request
// (req.Wait: Result.Waiter) or fails with ErrHeld or a *DelayError.
//
// A holder that already holds the lock in req.Mode gets it again (Already;
// no new generation). Asking in the other mode, or while already queued,
// fails with fsapi.ErrBadRequest.
func (t *Table) Acquire(req Request, now int64) (Result, error) {
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	l := t.locks[req.Path]
	if l == nil {
		l = &Lock{Path: req.Path} // stored only once someone holds or waits
	}
	res := Result{Others: t.settle(l, now)}
	if i := l.holds(req.Holder); i >= 0 {
		if l.Mode != req.Mode {
			return res, fmt.Errorf("%w: locks: acquire %s %v: %v already holds it %v; release it first",
				fsapi.ErrBadRequest, req.Path, req.Mode, req.Holder, l.Mode)
		}
		res.Granted, res.Already, res.Generation = true, true, l.Generation
		return res, nil
	}
	if i := l.waiting(req.Holder); i >= 0 {
		return res, fmt.Errorf("%w: locks: acquire %s: %v is already waiting for it as w%d",
			fsapi.ErrBadRequest, req.Path, req.Holder, l.Waiters[i].ID)
	}
	if len(l.Waiters) == 0 && l.admits(req.Mode, now) {
		t.locks[req.Path] = l
		t.index(req.Holder.Session, req.Path, +1)
		g := t.grant(l, req.Holder, req.Mode, req.LockDelay, 0)
		res.Granted, res.Generation = true, g.Generation
		return res, nil
	}
	if !req.Wait {
		return res, l.busy()
	}
	t.locks[req.Path] = l
	t.index(req.Holder.Session, req.Path, +1)
	t.lastWaiter++
	l.Waiters = append(l.Waiters, Waiter{ID: t.lastWaiter, Holder: req.Holder, Mode: req.Mode, LockDelay: req.LockDelay})
	t.updateDelayed(l)
	res.Waiter = t.lastWaiter
	return res, nil
}

// Release gives up h's hold on path and returns the grants it caused: the
// next waiter, or every consecutive shared waiter at the head of the queue.
// Nobody else is woken. Release never starts a lock-delay. If h does not
// hold the lock, it fails with ErrNotHeld and changes nothing.
func (t *Table) Release(path string, h Holder, now int64) ([]Grant, error) {
	l := t.locks[path]
	if l == nil || l.holds(h) < 0 {
		return nil, t.notHeld(path, h)
	}
	t.removeHold(l, l.holds(h), false, now)
	return t.settle(l, now), nil
}

func (t *Table) notHeld(path string, h Holder) error {
	if l := t.locks[path]; l != nil {
		if i := l.waiting(h); i >= 0 {
			return fmt.Errorf("%w: %v does not hold %s; it is waiting as w%d (cancel it instead)",
				ErrNotHeld, h, path, l.Waiters[i].ID)
		}
	}
	return fmt.Errorf("%w: %v does not hold %s", ErrNotHeld, h, path)
}

// Cancel withdraws the request that was queued as waiter (its context
// ended). If it is still queued it leaves the queue; if it was granted
// meanwhile (the grant and the cancellation crossed), the lock is released
// as by Release. Either way its requester does not hold the lock afterwards,
// and Cancel returns the grants this caused (removing the head of the queue
// may unblock the next waiters). An unknown waiter fails with ErrNoWaiter.
func (t *Table) Cancel(path string, waiter uint64, now int64) ([]Grant, error) {
	l := t.locks[path]
	if l != nil && waiter != 0 {
		for i, w := range l.Waiters {
			if w.ID == waiter {
				l.Waiters = slices.Delete(l.Waiters, i, i+1)
				t.index(w.Holder.Session, path, -1)
				return t.settle(l, now), nil
			}
		}
		for i, h := range l.Holders {
			if h.Waiter == waiter {
				t.removeHold(l, i, false, now)
				return t.settle(l, now), nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %s has no waiter w%d", ErrNoWaiter, path, waiter)
}

// SessionLost drops everything session holds or waits for: its session
// expired. A lock it held starts a lock-delay of now + that hold's
// LockDelay (see the package doc). It returns the grants this caused (only
// where no lock-delay prevents them), locks in path order.
func (t *Table) SessionLost(session uint64, now int64) []Grant {
	return t.drop(session, func(Holder) bool { return true }, true, now)
}

// SessionClosed is SessionLost for a session its client closed cleanly:
// like Release (and Cancel), it starts no lock-delay.
func (t *Table) SessionClosed(session uint64, now int64) []Grant {
	return t.drop(session, func(Holder) bool { return true }, false, now)
}

// HandleLost is SessionLost for one handle: it became invalid while its
// session lives on (its node was deleted, or the master dropped it).
func (t *Table) HandleLost(h Holder, now int64) []Grant {
	return t.drop(h.Session, func(o Holder) bool { return o == h }, true, now)
}

// HandleClosed drops everything handle h holds or waits for because its
// owner closed it: like Release (and Cancel), it starts no lock-delay.
func (t *Table) HandleClosed(h Holder, now int64) []Grant {
	return t.drop(h.Session, func(o Holder) bool { return o == h }, false, now)
}

func (t *Table) drop(session uint64, match func(Holder) bool, lost bool, now int64) []Grant {
	var out []Grant
	for _, p := range sortedKeys(t.sessions[session]) {
		l := t.locks[p]
		mine := func(h Holder) bool { return h.Session == session && match(h) }
		touched := false
		kept := l.Waiters[:0]
		for _, w := range l.Waiters {
			if mine(w.Holder) {
				t.index(session, p, -1)
				touched = true
			} else {
				kept = append(kept, w)
			}
		}
		l.Waiters = kept
		for i := len(l.Holders) - 1; i >= 0; i-- {
			if mine(l.Holders[i].Holder) {
				t.removeHold(l, i, lost, now)
				touched = true
			}
		}
		if touched {
			out = append(out, t.settle(l, now)...)
		}
	}
	return out
}

// Tick grants the waiters whose lock-delay has ended by now, locks in path
// order. The caller calls it at NextDeadline (every other operation also
// settles the lock it touches, so a late Tick only delays grants).
func (t *Table) Tick(now int64) []Grant {
	var due []string
	for p := range t.delayed {
		if t.locks[p].DelayUntil <= now {
			due = append(due, p)
		}
	}
	slices.Sort(due)
	var out []Grant
	for _, p := range due {
		out = append(out, t.settle(t.locks[p], now)...)
	}
	return out
}

// NextDeadline is the earliest instant at which Tick would grant something
// (a lock-delay ending with a waiter queued). ok is false if there is none.
// It may be in the past (if nobody has ticked yet): then tick at once.
func (t *Table) NextDeadline() (at int64, ok bool) {
	for p := range t.delayed {
		if d := t.locks[p].DelayUntil; !ok || d < at {
			at, ok = d, true
		}
	}
	return at, ok
}

// Delete forgets the lock on path because its node was deleted, and returns
// what it was (holders and waiters, for the caller to fail or invalidate).
// Nobody is granted anything. A node created later under the same path
// starts a fresh lock at generation 0: the node instance tells them apart.
func (t *Table) Delete(path string) (Lock, bool) {
	l, ok := t.locks[path]
	if !ok {
		return Lock{Path: path}, false
	}
	for _, h := range l.Holders {
		t.index(h.Holder.Session, path, -1)
	}
	for _, w := range l.Waiters {
		t.index(w.Holder.Session, path, -1)
	}
	delete(t.locks, path)
	delete(t.delayed, path)
	return l.clone(), true
}

// settle grants waiters from the head of the queue while they are
// admissible, and returns those grants in order.
func (t *Table) settle(l *Lock, now int64) []Grant {
	var out []Grant
	for len(l.Waiters) > 0 && l.admits(l.Waiters[0].Mode, now) {
		w := l.Waiters[0]
		l.Waiters = l.Waiters[1:]
		out = append(out, t.grant(l, w.Holder, w.Mode, w.LockDelay, w.ID))
	}
	if len(l.Waiters) == 0 {
		l.Waiters = nil
	}
	t.updateDelayed(l)
	return out
}

// admits says whether a request in mode m, at the head of the queue, may
// hold the lock now.
func (l *Lock) admits(m Mode, now int64) bool {
	if !l.Held() {
		return now >= l.DelayUntil
	}
	return l.Mode == Shared && m == Shared
}

// grant makes h a holder (the caller keeps the session index right).
func (t *Table) grant(l *Lock, h Holder, m Mode, d time.Duration, waiter uint64) Grant {
	if !l.Held() {
		l.Generation++
		l.Mode = m
		l.DelayUntil = 0 // it has passed: admits checked it
	}
	i, _ := slices.BinarySearchFunc(l.Holders, h, func(x Hold, h Holder) int { return cmpHolder(x.Holder, h) })
	l.Holders = slices.Insert(l.Holders, i, Hold{Holder: h, LockDelay: d, Waiter: waiter})
	return Grant{Path: l.Path, Holder: h, Mode: m, Generation: l.Generation, Waiter: waiter}
}

// removeHold drops l.Holders[i]. A lost holder starts its lock-delay.
func (t *Table) removeHold(l *Lock, i int, lost bool, now int64) {
	h := l.Holders[i]
	if t.report {
		t.released = append(t.released, Released{Path: l.Path, Holder: h.Holder, Mode: l.Mode, Lost: lost})
	}
	l.Holders = slices.Delete(l.Holders, i, i+1)
	t.index(h.Holder.Session, l.Path, -1)
	if lost && h.LockDelay > 0 {
		l.DelayUntil = max(l.DelayUntil, addDelay(now, h.LockDelay))
	}
	if len(l.Holders) == 0 {
		l.Holders, l.Mode = nil, 0
	}
}

func (t *Table) index(session uint64, path string, delta int) {
	m := t.sessions[session]
	if m == nil {
		m = map[string]int{}
		t.sessions[session] = m
	}
	if m[path] += delta; m[path] <= 0 {
		delete(m, path)
		if len(m) == 0 {
			delete(t.sessions, session)
		}
	}
}

func (t *Table) updateDelayed(l *Lock) {
	if !l.Held() && len(l.Waiters) > 0 {
		t.delayed[l.Path] = struct{}{}
	} else {
		delete(t.delayed, l.Path)
	}
}

// holds is the index of h in l.Holders, or -1.
func (l *Lock) holds(h Holder) int {
	i, ok := slices.BinarySearchFunc(l.Holders, h, func(x Hold, h Holder) int { return cmpHolder(x.Holder, h) })
	if !ok {
		return -1
	}
	return i
}

// waiting is the index of h in l.Waiters, or -1.
func (l *Lock) waiting(h Holder) int {
	return slices.IndexFunc(l.Waiters, func(w Waiter) bool { return w.Holder == h })
}

// busy is the TryAcquire failure for a lock that does not admit a request.
func (l *Lock) busy() error {
	if !l.Held() {
		return &DelayError{Path: l.Path, Until: l.DelayUntil}
	}
	var ahead string
	if n := len(l.Waiters); n > 0 {
		ahead = "; " + strconv.Itoa(n) + " request(s) queued ahead, and requests are granted in order"
	}
	return fmt.Errorf("%w: %s is held %v by %s%s", ErrHeld, l.Path, l.Mode, l.holderList(), ahead)
}

func (l *Lock) holderList() string {
	const show = 3
	var names []string
	for _, h := range l.Holders[:min(show, len(l.Holders))] {
		names = append(names, h.Holder.String())
	}
	s := strings.Join(names, ", ")
	if n := len(l.Holders) - show; n > 0 {
		s += " and " + strconv.Itoa(n) + " more"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
