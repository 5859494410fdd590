package master

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/lease"
)

// Consistent client caching, the master's side (DESIGN.md §6):
//
//   - A read served while its node is cachable registers the session as a
//     cacher of the node (or, for ReadDir, of the directory's listing) and
//     says Cacheable in its reply.
//   - A write first makes every node it may change uncachable (reads are
//     served but flagged not cacheable), then queues an invalidation for
//     every session caching one of them and waits until each has
//     acknowledged it on its next KeepAlive, or its lease has ended (a
//     client stops using its cache when its local lease runs out, which is
//     never after the master's). Only then is the write proposed. The nodes
//     become cachable again once it is applied.
//   - Writes to one node pass the invalidation stage in order: a later
//     write's invalidation completes only after every earlier one's has.
//   - A read checks, after taking its view, that no write began on what it
//     read (the node, or the directory's listing) since it registered
//     ("register, read, then check"): if one did, the reply is not
//     cacheable. Otherwise the view was taken before that write's
//     invalidation was queued, so its revision is at most the
//     invalidation's: the client refuses a crossing reply by revision.
//     Write epochs come from one counter that never goes back, and a path's
//     state is forgotten only by raising a floor (retired), so a read that
//     straddles a whole write is caught even after the write's state is
//     gone.
//   - A new master does not know what clients cache. Every inherited
//     session that caches is "unflushed" until a KeepAlive shows it has
//     flushed its cache at this master's epoch; writes wait for that (or
//     the session's lease) too.
//
// All of it is leader-local and rebuilt empty by each new master.

// errSteppedDown ends a write's wait when this replica stops being master.
var errSteppedDown = errors.New("master: stepped down")

// invalTarget is one session a write must hear from.
type invalTarget struct {
	cs  *cacheSession
	seq uint64
}

type cacheSession struct {
	id       uint64
	cached   map[string]struct{} // registered in cachers (reverse index)
	listed   map[string]struct{} // registered in listers
	lastSeq  uint64              // last invalidation number handed out
	acked    uint64              // highest acknowledged
	pending  []wire.Invalidation // queued and not yet acknowledged, in order
	flushed  bool                // its cache holds nothing from before this master
	changeCh chan struct{}       // closed and replaced when pending or acked change
}

func (cs *cacheSession) changed() {
	close(cs.changeCh)
	cs.changeCh = make(chan struct{})
}

type pathState struct {
	epoch   uint64        // the table's write counter when the latest write on the key began
	busy    int           // writes between begin and end
	lastInv chan struct{} // closed when the latest write's invalidation stage is done
}

// stateKey is the key of a node's state in cacheTable.paths, or (listing)
// of its directory listing's: a change to a child's stat changes the
// listing but not the directory's own node.
func stateKey(path string, listing bool) string {
	if listing {
		return path + "\x00listing"
	}
	return path
}

type cacheTable struct {
	clock lease.Clock // the clock session lease ends are measured on
	// stopCh is closed when the replica shuts down: background waits for
	// acknowledgements end then, since no later write can follow.
	stopCh <-chan struct{}

	mu       sync.Mutex // protects following fields
	cachers  map[string]map[uint64]struct{}
	listers  map[string]map[uint64]struct{}
	sessions map[uint64]*cacheSession
	paths    map[string]*pathState // by stateKey
	// writes counts writes begun (and resets); it never goes back.
	// retired is the newest epoch of a path state that was forgotten: a
	// read that began before it and finds no state cannot tell whether a
	// write on its path came and went, so it is not cacheable.
	writes, retired uint64
	// gen counts resets: a write ticket of an earlier generation (a write
	// of an earlier term whose proposal resolved late) must not touch
	// this term's path states or registrations.
	gen uint64
	// term is the master term the table serves (0 when not master). A
	// KeepAlive handled for an earlier term must not touch it (keepAlive).
	term uint64
	// unflushed counts inherited caching sessions not yet flushed;
	// flushedCh is closed when it reaches zero.
	unflushed int
	flushedCh chan struct{}
	pendingN  int // invalidations queued, not yet acknowledged
}

func newCacheTable(clock lease.Clock, stopCh <-chan struct{}) *cacheTable {
	t := &cacheTable{clock: clock, stopCh: stopCh}
	t.reset(0, nil)
	return t
}

// reset empties the table for term (0: no longer master). inherited are
// the sessions that may hold cached data from an earlier master.
func (t *cacheTable) reset(term uint64, inherited []uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.term = term
	t.cachers = map[string]map[uint64]struct{}{}
	t.listers = map[string]map[uint64]struct{}{}
	t.sessions = map[uint64]*cacheSession{}
	t.paths = map[string]*pathState{}
	t.gen++
	// Reads in flight registered in the old table: not cacheable.
	t.writes++
	t.retired = t.writes
	t.pendingN = 0
	t.flushedCh = make(chan struct{})
	t.unflushed = 0
	for _, id := range inherited {
		t.session(id).flushed = false
		t.unflushed++
	}
	if t.unflushed == 0 {
		close(t.flushedCh)
	}
}

// session returns the session's entry, creating it (flushed: a session
// that first appears in this term has cached nothing from an earlier one).
func (t *cacheTable) session(id uint64) *cacheSession {
	cs := t.sessions[id]
	if cs == nil {
		cs = &cacheSession{id: id, cached: map[string]struct{}{}, listed: map[string]struct{}{}, flushed: true,
			changeCh: make(chan struct{})}
		t.sessions[id] = cs
	}
	return cs
}

// readToken is what a read remembers between registering and checking.
type readToken struct {
	key       string // stateKey
	epoch     uint64
	cacheable bool
}

// beginRead registers session as a cacher of path (or of its listing)
// unless a write on it is in progress.
func (t *cacheTable) beginRead(session uint64, path string, listing bool) readToken {
	t.mu.Lock()
	defer t.mu.Unlock()
	tok := readToken{key: stateKey(path, listing), epoch: t.writes}
	if ps := t.paths[tok.key]; ps != nil && ps.busy > 0 {
		return tok
	}
	m, rev := t.cachers, t.session(session).cached
	if listing {
		m, rev = t.listers, t.session(session).listed
	}
	set := m[path]
	if set == nil {
		set = map[uint64]struct{}{}
		m[path] = set
	}
	set[session] = struct{}{}
	rev[path] = struct{}{}
	tok.cacheable = true
	return tok
}

// endRead says whether the reply may be cached: no write began on the path
// since beginRead.
func (t *cacheTable) endRead(tok readToken) bool {
	if !tok.cacheable {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps := t.paths[tok.key]; ps != nil {
		return ps.epoch <= tok.epoch
	}
	return t.retired <= tok.epoch
}

// writeTicket is one write's passage through the table.
type writeTicket struct {
	gen     uint64   // the table's generation when it began
	keys    []string // stateKeys of the nodes and listings it changes
	prev    []chan struct{}
	done    chan struct{}
	targets []invalTarget
	flushed chan struct{}
	// took lists the registrations the write removed, so that a write
	// that gives up before every target acknowledged can put back those
	// that did not: they may still hold cached copies.
	took []took
	ok   bool // every target acknowledged (or expired)
}

type took struct {
	path    string
	listing bool
	session uint64
	seq     uint64
}

// beginWrite makes paths uncachable and queues their invalidations at
// revision applied() (the state machine's applied index), which it reads
// under the table's lock: every reply answered cacheable before the write
// began took its view before its endRead, so before this, and was read at
// or below it; the client then refuses such a reply if it arrives after
// the invalidation. (The revision was once read before the lock: a read
// that ended in between, at a newer view, was answered cacheable and
// registered, its invalidation carried the older revision, and the client
// kept the reply when it crossed the invalidation. Bug table row 41.)
// The caller must call endWrite.
func (t *cacheTable) beginWrite(paths, listingOf []string, applied func() uint64) *writeTicket {
	t.mu.Lock()
	defer t.mu.Unlock()
	rev := applied()
	w := &writeTicket{gen: t.gen, done: make(chan struct{}), flushed: t.flushedCh}
	t.writes++
	notify := map[uint64]*cacheSession{}
	queue := func(id uint64, inv wire.Invalidation) {
		cs := t.session(id)
		cs.lastSeq++
		inv.Seq = cs.lastSeq
		cs.pending = append(cs.pending, inv)
		t.pendingN++
		notify[id] = cs
		w.took = append(w.took, took{path: inv.Path, listing: inv.Listing, session: id, seq: inv.Seq})
	}
	mark := func(key string) {
		ps := t.paths[key]
		if ps != nil && ps.lastInv == w.done {
			return // named twice
		}
		if ps == nil {
			ps = &pathState{}
			t.paths[key] = ps
		}
		ps.epoch = t.writes
		ps.busy++
		if ps.lastInv != nil {
			w.prev = append(w.prev, ps.lastInv)
		}
		ps.lastInv = w.done
		w.keys = append(w.keys, key)
	}
	for _, p := range paths {
		mark(stateKey(p, false))
		for id := range t.cachers[p] {
			queue(id, wire.Invalidation{Path: p, Revision: rev})
			delete(t.sessions[id].cached, p)
		}
		delete(t.cachers, p)
	}
	// The listing of d shows its children's stats: a change to a child
	// changes it. A change to d itself (its deletion) changes it too.
	for _, d := range append(slices.Clip(listingOf), paths...) {
		mark(stateKey(d, true))
		for id := range t.listers[d] {
			queue(id, wire.Invalidation{Path: d, Revision: rev, Listing: true})
			delete(t.sessions[id].listed, d)
		}
		delete(t.listers, d)
	}
	for _, cs := range notify {
		w.targets = append(w.targets, invalTarget{cs: cs, seq: cs.lastSeq})
		cs.changed()
	}
	return w
}

// waitWrite waits until earlier writes on the same paths passed this
// stage, every target acknowledged its invalidation or its lease ended
// (leaseEnd), and every inherited caching session flushed.
//
// If it gives up early (ctx ends, or stop is closed) it still waits for
// the targets in the background before it lets later writes on the same
// paths pass: those sessions may still hold cached copies. That wait ends
// when the replica shuts down (no later write can follow on it; a lease
// can be minutes long, and the goroutine must not outlive the replica).
func (t *cacheTable) waitWrite(ctx context.Context, w *writeTicket, stop <-chan struct{}, leaseEnd func(uint64) (time.Time, bool)) (err error) {
	defer func() {
		if err == nil {
			close(w.done)
			return
		}
		go func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if t.stopCh != nil {
				go func() {
					select {
					case <-t.stopCh:
						cancel()
					case <-ctx.Done():
					}
				}()
			}
			for _, tg := range w.targets {
				if t.waitAck(ctx, tg, leaseEnd) != nil {
					break
				}
			}
			close(w.done)
			t.forgetIdle(w)
		}()
	}()
	if stop != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		go func() {
			select {
			case <-stop:
				cancel(errSteppedDown)
			case <-ctx.Done():
			}
		}()
	}
	for _, ch := range w.prev {
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	for _, tg := range w.targets {
		if err := t.waitAck(ctx, tg, leaseEnd); err != nil {
			return err
		}
	}
	for {
		select {
		case <-w.flushed:
			t.mu.Lock()
			w.ok = true
			t.mu.Unlock()
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
			// Sessions whose lease ended no longer count.
			t.dropUnflushedExpired(leaseEnd)
		}
	}
}

func (t *cacheTable) waitAck(ctx context.Context, tg invalTarget, leaseEnd func(uint64) (time.Time, bool)) error {
	for {
		t.mu.Lock()
		acked, ch := tg.cs.acked, tg.cs.changeCh
		t.mu.Unlock()
		if acked >= tg.seq {
			return nil
		}
		end, ok := leaseEnd(tg.cs.id)
		now := t.clock.Now()
		if !ok || !now.Before(end) {
			return nil // the client stopped using its cache when its lease ran out
		}
		timer := t.clock.NewTimer(end.Sub(now))
		select {
		case <-ch:
		case <-timer.C():
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		}
		timer.Stop()
	}
}

func (t *cacheTable) dropUnflushedExpired(leaseEnd func(uint64) (time.Time, bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, cs := range t.sessions {
		if cs.flushed {
			continue
		}
		if end, ok := leaseEnd(id); !ok || !t.clock.Now().Before(end) {
			t.markFlushed(cs)
		}
	}
}

func (t *cacheTable) markFlushed(cs *cacheSession) {
	if cs.flushed {
		return
	}
	cs.flushed = true
	if t.unflushed--; t.unflushed == 0 {
		close(t.flushedCh)
	}
}

// endWrite makes the paths cachable again once no other write is on them.
func (t *cacheTable) endWrite(w *writeTicket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w.gen != t.gen {
		return // the table was reset since: nothing here is this write's
	}
	if !w.ok {
		// Put back the registrations of sessions that have not
		// acknowledged: the next write on the path must wait for them.
		for _, tk := range w.took {
			cs := t.sessions[tk.session]
			if cs == nil || cs.acked >= tk.seq {
				continue
			}
			m, rev := t.cachers, cs.cached
			if tk.listing {
				m, rev = t.listers, cs.listed
			}
			if m[tk.path] == nil {
				m[tk.path] = map[uint64]struct{}{}
			}
			m[tk.path][tk.session] = struct{}{}
			rev[tk.path] = struct{}{}
		}
	}
	for _, key := range w.keys {
		if ps := t.paths[key]; ps != nil {
			ps.busy--
		}
	}
	t.forgetIdleLocked(w)
}

// forgetIdle forgets the states of w's paths that nothing needs any more:
// no write in progress, and the latest write's invalidation stage done.
// endWrite does it when the write ends; a write that gave up early ends
// before its background wait does, and that wait calls it again when it
// is over, so the state does not stay behind.
func (t *cacheTable) forgetIdle(w *writeTicket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetIdleLocked(w)
}

func (t *cacheTable) forgetIdleLocked(w *writeTicket) {
	if w.gen != t.gen {
		return
	}
	for _, key := range w.keys {
		if ps := t.paths[key]; ps != nil && ps.busy == 0 && isClosed(ps.lastInv) {
			// Keep its epoch in the floor.
			t.retired = max(t.retired, ps.epoch)
			delete(t.paths, key)
		}
	}
}

// keepAlive records a KeepAlive's acknowledgement and flush, and returns
// the invalidations to deliver and a channel closed when more arrive.
//
// An acknowledgement counts only if it is for this master's invalidations
// (ackEpoch == term): each master numbers its own from 1.
//
// term is the term the KeepAlive is answered in. If the table no longer
// serves it (this replica stepped down, and perhaps leads again in a later
// term), keepAlive changes nothing and reports !ok: the client's
// acknowledgement and flush are of the earlier term's invalidations, and
// counted against the later term's they would release its writes before
// the client dropped what they change.
func (t *cacheTable) keepAlive(session, ack, ackEpoch, flushedEpoch, term uint64) (invs []wire.Invalidation, changeCh <-chan struct{}, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if term != t.term {
		return nil, nil, false
	}
	cs := t.session(session)
	if ackEpoch == term && ack > cs.acked {
		n := 0
		for n < len(cs.pending) && cs.pending[n].Seq <= ack {
			n++
		}
		t.pendingN -= n
		cs.pending = slices.Delete(cs.pending, 0, n)
		cs.acked = min(ack, cs.lastSeq)
		cs.changed()
	}
	if flushedEpoch >= term {
		t.markFlushed(cs)
	}
	return slices.Clone(cs.pending), cs.changeCh, true
}

// dropSession forgets a session that ended.
func (t *cacheTable) dropSession(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.sessions[id]
	if cs == nil {
		return
	}
	forget := func(m map[string]map[uint64]struct{}, paths map[string]struct{}) {
		for p := range paths {
			if set := m[p]; set != nil {
				delete(set, id)
				if len(set) == 0 {
					delete(m, p)
				}
			}
		}
	}
	forget(t.cachers, cs.cached)
	forget(t.listers, cs.listed)
	t.pendingN -= len(cs.pending)
	t.markFlushed(cs)
	cs.acked = cs.lastSeq
	cs.changed()
	delete(t.sessions, id)
}

// stats reports the entries tracked and the invalidations pending.
func (t *cacheTable) stats() (entries, pending int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range []map[string]map[uint64]struct{}{t.cachers, t.listers} {
		for _, set := range m {
			entries += len(set)
		}
	}
	return entries, t.pendingN
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
