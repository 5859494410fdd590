package fsm

import (
	"sort"
	"strings"
	"sync"

	"github.com/haspcell/hasp/fsapi"
)

// Change events (DESIGN.md §8).
//
// Every applied command yields the events it caused, in the order it made
// the changes (txn.emit): created, modified (contents), deleted (including
// the ephemeral-directory cascade and the deletions of a session that
// ends), lock-acquired (each grant, at once or to a queued request) and
// lock-requested (a request queued). They follow from the command and the
// state alone, so every replica records the same events for the same entry.
// Child added/removed/modified are not separate events: a consumer derives
// them from a child's created/deleted/modified event and its parent path.
//
// The replica keeps the most recent events in memory, in a ring of at most
// Config.EventHistory events. The history is not part of snapshots: Restore
// empties it and sets its floor to the snapshot's index + 1, and the
// entries applied after that refill it. So the history always holds every
// event of the revisions from Floor to Last: complete, in order, without a
// gap.

// DefaultEventHistory is the default Config.EventHistory.
const DefaultEventHistory = 32768

// EventFilter selects the events on Path, and with Recursive the events on
// every node below it, or with Children those on its direct children.
type EventFilter struct {
	Path      string
	Recursive bool
	Children  bool
}

// Match says whether an event on path passes the filter.
func (f EventFilter) Match(path string) bool {
	switch {
	case path == f.Path:
		return true
	case f.Recursive:
		return under(path, f.Path)
	case f.Children:
		return path != fsapi.Root && fsapi.Parent(path) == f.Path
	}
	return false
}

// under says whether path is strictly below dir.
func under(path, dir string) bool {
	if dir == fsapi.Root {
		return path != fsapi.Root
	}
	return len(path) > len(dir) && path[len(dir)] == '/' && strings.HasPrefix(path, dir)
}

// EventBatch is what EventsSince found.
type EventBatch struct {
	// Events are the matching events at or after the asked position, in
	// order.
	Events []fsapi.Event
	// Last is the last revision the history has recorded: with More false,
	// every matching event up to the end of revision Last is in Events.
	Last uint64
	// More: the batch stopped at the event or byte limit; more matching
	// events may follow the last one.
	More bool
	// Floor is the oldest revision whose events the history holds
	// complete. Compacted: the asked position is below it, and Events is
	// empty.
	Floor     uint64
	Compacted bool
}

// EventsSince returns the events that match filter at positions
// (Revision, Index) >= (from, fromIndex), at most limit of them (<= 0:
// no limit) and about maxBytes (<= 0: no limit) of paths and stats, and at
// least one if there is one. Safe concurrently with Apply.
func (f *FSM) EventsSince(from uint64, fromIndex uint32, filter EventFilter, limit, maxBytes int) EventBatch {
	return f.events.since(from, fromIndex, filter, limit, maxBytes)
}

// EventFloor is the oldest revision whose events the history holds
// complete, and EventLast the last revision it recorded (events or not).
// EventCount is how many events it holds.
func (f *FSM) EventFloor() uint64 { return f.events.stats().floor }
func (f *FSM) EventLast() uint64  { return f.events.stats().last }
func (f *FSM) EventCount() int    { return f.events.stats().n }

// EventWaiter is woken (C receives) after the history records an event that
// matches its filter, after a Restore empties the history, and now and then
// without a reason (every quarter of the history's capacity of events), so
// that a reader that moves its position up to the history's Last after
// each read is never compacted while it waits. C has room
// for one wake-up, so a wake-up that comes while nobody reads is kept.
// Register before reading the history, so that no event recorded in
// between goes unnoticed.
type EventWaiter struct {
	C      <-chan struct{}
	c      chan struct{}
	filter EventFilter
	h      *history
}

// WaitEvents registers a waiter for events matching filter. Call Stop when
// done. Safe concurrently with Apply.
func (f *FSM) WaitEvents(filter EventFilter) *EventWaiter {
	c := make(chan struct{}, 1)
	w := &EventWaiter{C: c, c: c, filter: filter, h: f.events}
	f.events.register(w)
	return w
}

// Stop unregisters the waiter.
func (w *EventWaiter) Stop() { w.h.unregister(w) }

// EventWaiters is how many EventWaiters are registered.
func (f *FSM) EventWaiters() int {
	h := f.events
	h.wmu.Lock()
	defer h.wmu.Unlock()
	return h.nwaiters
}

func (w *EventWaiter) wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// history is the ring of recent events and the waiters for new ones.
type history struct {
	capacity int

	mu    sync.RWMutex // protects following fields
	buf   []fsapi.Event
	head  int // index in buf of the oldest event
	n     int // events held
	floor uint64
	last  uint64
	// sinceSweep counts the events recorded since every waiter was last
	// woken (see record).
	sinceSweep int

	wmu sync.Mutex // protects following fields
	// Waiters by filter kind, keyed by filter path.
	exact, children, recursive map[string]map[*EventWaiter]struct{}
	nwaiters                   int
}

func newHistory(capacity int) *history {
	return &history{capacity: capacity, floor: 1,
		exact: map[string]map[*EventWaiter]struct{}{}, children: map[string]map[*EventWaiter]struct{}{},
		recursive: map[string]map[*EventWaiter]struct{}{}}
}

type historyStats struct {
	floor, last uint64
	n           int
}

func (h *history) stats() historyStats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return historyStats{h.floor, h.last, h.n}
}

// at returns the i-th oldest event held.
func (h *history) at(i int) *fsapi.Event { return &h.buf[(h.head+i)%len(h.buf)] }

// record appends the events of the entry at index (numbering them) and
// wakes the waiters they match. Apply calls it, after publishing the
// state the events describe, for every entry that reaches the FSM's state
// (even one without events, so that Last follows the applied index).
//
// A waiter that read the history at revision L (and then moves its
// position to L+1) cannot be compacted before more than the ring's
// capacity of events are recorded after that read. Every capacity/4
// events, record wakes every waiter, matching or not, so that each reads
// again and moves its position up: a watch of a quiet path is not
// compacted by the traffic on others.
func (h *history) record(index uint64, evs []fsapi.Event) {
	h.mu.Lock()
	for i := range evs {
		evs[i].Revision, evs[i].Index = index, uint32(i)
		h.push(evs[i])
	}
	h.last = index
	h.sinceSweep += len(evs)
	sweep := h.sinceSweep >= max(h.capacity/4, 1)
	if sweep {
		h.sinceSweep = 0
	}
	h.mu.Unlock()
	switch {
	case sweep:
		h.wakeAll()
	case len(evs) > 0:
		h.notify(evs)
	}
}

// wakeAll wakes every waiter.
func (h *history) wakeAll() {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	for _, m := range []map[string]map[*EventWaiter]struct{}{h.exact, h.children, h.recursive} {
		for _, ws := range m {
			for w := range ws {
				w.wake()
			}
		}
	}
}

// push adds one event. Until the ring is full it grows (head stays 0 and
// n == len(buf)); then the oldest event is overwritten. The revision of an
// evicted event is no longer complete, so the floor moves past it. The
// caller holds h.mu.
func (h *history) push(e fsapi.Event) {
	if len(h.buf) < h.capacity {
		h.buf = append(h.buf, e)
		h.n++
		return
	}
	h.floor = max(h.floor, h.buf[h.head].Revision+1)
	h.buf[h.head] = e
	h.head = (h.head + 1) % len(h.buf)
}

// reset empties the history after a Restore at index, and wakes every
// waiter (their position may now be compacted).
func (h *history) reset(index uint64) {
	h.mu.Lock()
	clear(h.buf)
	h.buf, h.head, h.n = nil, 0, 0
	h.floor, h.last = index+1, index
	h.sinceSweep = 0
	h.mu.Unlock()
	h.wakeAll()
}

func (h *history) since(from uint64, fromIndex uint32, filter EventFilter, limit, maxBytes int) EventBatch {
	h.mu.RLock()
	defer h.mu.RUnlock()
	b := EventBatch{Last: h.last, Floor: h.floor}
	if from < h.floor {
		b.Compacted = true
		return b
	}
	// The first event at or after (from, fromIndex): events are in
	// position order.
	i := sort.Search(h.n, func(i int) bool {
		e := h.at(i)
		return e.Revision > from || e.Revision == from && e.Index >= fromIndex
	})
	bytes := 0
	for ; i < h.n; i++ {
		e := h.at(i)
		if !filter.Match(e.Path) {
			continue
		}
		if limit > 0 && len(b.Events) >= limit || maxBytes > 0 && bytes >= maxBytes {
			b.More = true
			break
		}
		b.Events = append(b.Events, *e)
		bytes += eventSize(e)
	}
	return b
}

// eventSize estimates an event's encoded size.
func eventSize(e *fsapi.Event) int { return len(e.Path) + 160 }

func (h *history) index(f EventFilter) map[string]map[*EventWaiter]struct{} {
	switch {
	case f.Recursive:
		return h.recursive
	case f.Children:
		return h.children
	}
	return h.exact
}

func (h *history) register(w *EventWaiter) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	m := h.index(w.filter)
	ws := m[w.filter.Path]
	if ws == nil {
		ws = map[*EventWaiter]struct{}{}
		m[w.filter.Path] = ws
	}
	if _, ok := ws[w]; !ok {
		ws[w] = struct{}{}
		h.nwaiters++
	}
}

func (h *history) unregister(w *EventWaiter) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	m := h.index(w.filter)
	ws := m[w.filter.Path]
	if _, ok := ws[w]; !ok {
		return
	}
	delete(ws, w)
	h.nwaiters--
	if len(ws) == 0 {
		delete(m, w.filter.Path)
	}
}

// notify wakes the waiters whose filter matches one of evs: for an event
// on p, the exact waiters on p, the children waiters on p and on its
// parent, and the recursive waiters on p and on each of its ancestors. It
// costs O(depth) map lookups per event, whatever the number of waiters.
func (h *history) notify(evs []fsapi.Event) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if h.nwaiters == 0 {
		return
	}
	wakeAll := func(ws map[*EventWaiter]struct{}) {
		for w := range ws {
			w.wake()
		}
	}
	for i := range evs {
		p := evs[i].Path
		wakeAll(h.exact[p])
		wakeAll(h.children[p])
		wakeAll(h.recursive[p])
		if p == fsapi.Root {
			continue
		}
		parent := fsapi.Parent(p)
		wakeAll(h.children[parent])
		if len(h.recursive) == 0 {
			continue
		}
		for a := parent; ; a = fsapi.Parent(a) {
			wakeAll(h.recursive[a])
			if a == fsapi.Root {
				break
			}
		}
	}
}

// emit records an event of the command being applied; record numbers it.
func (t *txn) emit(kind fsapi.ChangeKind, path string, st fsapi.Stat) *fsapi.Event {
	t.events = append(t.events, fsapi.Event{Kind: kind, Path: path, Stat: st})
	return &t.events[len(t.events)-1]
}

// emitLock records a lock event with its holder or requester.
func (t *txn) emitLock(kind fsapi.ChangeKind, path string, n *Node, session uint64, mode uint8) {
	if n == nil {
		return // no node: the invariants rule it out
	}
	e := t.emit(kind, path, n.Stat)
	e.Session, e.Mode = session, mode
}
