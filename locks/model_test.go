package locks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/haspcell/hasp/fsapi"
)

// The reference model: per lock, one list of live requests in arrival
// order. Grants happen in arrival order, so the holders are always a prefix
// of the list; settling extends the prefix while the next request is
// admissible. No indexes, no sorting tricks: it recomputes from scratch.

type mreq struct {
	h     Holder
	mode  Mode
	delay time.Duration
	id    uint64 // waiter id; 0 if granted without queueing
	held  bool
}

type mlock struct {
	reqs       []mreq
	gen        uint64
	delayUntil int64
}

type model struct {
	locks map[string]*mlock
	last  uint64
}

func (l *mlock) nheld() int {
	n := 0
	for n < len(l.reqs) && l.reqs[n].held {
		n++
	}
	return n
}

func (l *mlock) settle(path string, now int64) []Grant {
	var out []Grant
	for n := l.nheld(); n < len(l.reqs); n++ {
		r := &l.reqs[n]
		if n == 0 {
			if now < l.delayUntil {
				break
			}
			l.gen++
			l.delayUntil = 0
		} else if l.reqs[0].mode != Shared || r.mode != Shared {
			break
		}
		r.held = true
		out = append(out, Grant{Path: path, Holder: r.h, Mode: r.mode, Generation: l.gen, Waiter: r.id})
	}
	return out
}

// op is one random operation, replayable on a table or on the model.
type op struct {
	kind    string
	req     Request
	path    string
	h       Holder
	waiter  uint64
	session uint64
	now     int64
}

func (o op) String() string {
	return fmt.Sprintf("%s %+v path=%s h=%v w=%d s=%d t=%v", o.kind, o.req, o.path, o.h, o.waiter, o.session, time.Duration(o.now))
}

type outcome struct {
	Res     Result
	Grants  []Grant
	Err     error // the sentinel the error wraps
	Deleted Lock
}

func classify(err error) error {
	for _, s := range []error{ErrHeld, ErrLockDelay, ErrNotHeld, ErrNoWaiter, fsapi.ErrBadRequest} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

func (o op) apply(tbl *Table) outcome {
	var out outcome
	var err error
	switch o.kind {
	case "acquire":
		out.Res, err = tbl.Acquire(o.req, o.now)
	case "release":
		out.Grants, err = tbl.Release(o.path, o.h, o.now)
	case "cancel":
		out.Grants, err = tbl.Cancel(o.path, o.waiter, o.now)
	case "session-lost":
		out.Grants = tbl.SessionLost(o.session, o.now)
	case "handle-lost":
		out.Grants = tbl.HandleLost(o.h, o.now)
	case "handle-closed":
		out.Grants = tbl.HandleClosed(o.h, o.now)
	case "tick":
		out.Grants = tbl.Tick(o.now)
	case "delete":
		out.Deleted, _ = tbl.Delete(o.path)
	}
	out.Err = classify(err)
	return out
}

func (m *model) apply(o op) outcome {
	var out outcome
	switch o.kind {
	case "acquire":
		out.Res, out.Err = m.acquire(o.req, o.now)
	case "release":
		out.Grants, out.Err = m.remove(o.path, func(r mreq) bool { return r.held && r.h == o.h }, ErrNotHeld, o.now)
	case "cancel":
		out.Grants, out.Err = m.remove(o.path, func(r mreq) bool { return r.id != 0 && r.id == o.waiter }, ErrNoWaiter, o.now)
	case "session-lost":
		out.Grants = m.drop(func(h Holder) bool { return h.Session == o.session }, true, o.now)
	case "handle-lost", "handle-closed":
		out.Grants = m.drop(func(h Holder) bool { return h == o.h }, o.kind == "handle-lost", o.now)
	case "tick":
		for _, p := range sortedKeys(m.locks) {
			out.Grants = append(out.Grants, m.locks[p].settle(p, o.now)...)
		}
	case "delete":
		out.Deleted = Lock{Path: o.path}
		if _, ok := m.locks[o.path]; ok {
			out.Deleted = m.state().lock(o.path)
			delete(m.locks, o.path)
		}
	}
	return out
}

func (m *model) acquire(req Request, now int64) (Result, error) {
	if err := req.validate(); err != nil {
		return Result{}, fsapi.ErrBadRequest
	}
	l, stored := m.locks[req.Path]
	if !stored {
		l = &mlock{}
	}
	res := Result{Others: l.settle(req.Path, now)}
	for _, r := range l.reqs {
		if r.h == req.Holder && (!r.held || r.mode != req.Mode) {
			return res, fsapi.ErrBadRequest
		}
		if r.h == req.Holder {
			res.Granted, res.Already, res.Generation = true, true, l.gen
			return res, nil
		}
	}
	l.reqs = append(l.reqs, mreq{h: req.Holder, mode: req.Mode, delay: req.LockDelay})
	me := &l.reqs[len(l.reqs)-1]
	if g := l.settle(req.Path, now); len(g) > 0 {
		res.Granted, res.Generation = true, g[0].Generation
	} else if req.Wait {
		m.last++
		me.id, res.Waiter = m.last, m.last
	} else {
		l.reqs = l.reqs[:len(l.reqs)-1]
		if l.nheld() == 0 {
			return res, ErrLockDelay
		}
		return res, ErrHeld
	}
	m.locks[req.Path] = l
	return res, nil
}

// remove drops the first request on path matching, or fails with notFound.
func (m *model) remove(path string, match func(mreq) bool, notFound error, now int64) ([]Grant, error) {
	l := m.locks[path]
	if l == nil {
		return nil, notFound
	}
	i := slices.IndexFunc(l.reqs, match)
	if i < 0 {
		return nil, notFound
	}
	l.reqs = slices.Delete(l.reqs, i, i+1)
	return l.settle(path, now), nil
}

func (m *model) drop(match func(Holder) bool, lost bool, now int64) []Grant {
	var out []Grant
	for _, p := range sortedKeys(m.locks) {
		l := m.locks[p]
		n := len(l.reqs)
		l.reqs = slices.DeleteFunc(l.reqs, func(r mreq) bool {
			if match(r.h) && r.held && lost && r.delay > 0 {
				l.delayUntil = max(l.delayUntil, now+int64(r.delay))
			}
			return match(r.h)
		})
		if len(l.reqs) != n {
			out = append(out, l.settle(p, now)...)
		}
	}
	return out
}

func (m *model) state() State {
	st := State{LastWaiter: m.last}
	for _, p := range sortedKeys(m.locks) {
		l := m.locks[p]
		lk := Lock{Path: p, Generation: l.gen, DelayUntil: l.delayUntil}
		for _, r := range l.reqs {
			if r.held {
				lk.Mode = l.reqs[0].mode
				lk.Holders = append(lk.Holders, Hold{Holder: r.h, LockDelay: r.delay, Waiter: r.id})
			} else {
				lk.Waiters = append(lk.Waiters, Waiter{ID: r.id, Holder: r.h, Mode: r.mode, LockDelay: r.delay})
			}
		}
		slices.SortFunc(lk.Holders, func(a, b Hold) int { return cmpHolder(a.Holder, b.Holder) })
		st.Locks = append(st.Locks, lk)
	}
	return st
}

func (s State) lock(path string) Lock {
	i := slices.IndexFunc(s.Locks, func(l Lock) bool { return l.Path == path })
	return s.Locks[i]
}

func (m *model) nextDeadline() (int64, bool) {
	var at int64
	ok := false
	for _, l := range m.locks {
		if len(l.reqs) > 0 && !l.reqs[0].held && (!ok || l.delayUntil < at) {
			at, ok = l.delayUntil, true
		}
	}
	return at, ok
}

// seed is HASP_SEED if set, else a fresh one; it is logged either way.
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("HASP_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("HASP_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with HASP_SEED=%d)", s, s)
	return s
}

func TestAgainstModel(t *testing.T) {
	histories, steps := 60, 400
	if testing.Short() {
		histories = 10
	}
	base := seed(t)
	for i := range histories {
		s := base + uint64(i)
		t.Run(strconv.FormatUint(s, 10), func(t *testing.T) {
			runHistory(t, s, steps)
		})
	}
}

func runHistory(t *testing.T, s uint64, steps int) {
	g := &gen{rng: rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))}
	tbl, m := NewTable(), &model{locks: map[string]*mlock{}}
	lastGen := map[string]uint64{}
	inst := map[string]uint64{} // node instance per path: bumped by delete
	var fence Fence
	var log []op
	var outs []outcome
	for step := range steps {
		o := g.next(tbl)
		pre := tbl.State()
		got, want := o.apply(tbl), m.apply(o)
		log, outs = append(log, o), append(outs, got)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("step %d: %v: %s\nbefore: %+v", step, o, fmt.Sprintf(format, args...), pre)
		}
		if !reflect.DeepEqual(got, want) {
			fail("table %+v\nmodel %+v", got, want)
		}
		checkTable(t, tbl)
		post := tbl.State()
		if ms := m.state(); !reflect.DeepEqual(post, ms) {
			fail("state differs:\ntable %+v\nmodel %+v", post, ms)
		}
		if err := checkGrants(o, pre, post, got, lastGen); err != nil {
			fail("%v", err)
		}
		if o.kind == "delete" {
			inst[o.path]++
		}
		if err := checkSequencers(tbl, pre, post, allGrants(got), inst, &fence); err != nil {
			fail("%v", err)
		}
		d1, ok1 := tbl.NextDeadline()
		if d2, ok2 := m.nextDeadline(); d1 != d2 || ok1 != ok2 {
			fail("NextDeadline %v,%v; model %v,%v", d1, ok1, d2, ok2)
		}
		if g.rng.IntN(40) == 0 {
			tbl = roundTrip(t, tbl) // a snapshot + restore changes nothing
		}
	}
	// Determinism: replaying the log on a fresh table gives the same
	// results and the same state, whatever the map order.
	again := NewTable()
	for i, o := range log {
		if got := o.apply(again); !reflect.DeepEqual(got, outs[i]) {
			t.Fatalf("replay step %d: %+v, first run %+v", i, got, outs[i])
		}
	}
	if !reflect.DeepEqual(again.State(), tbl.State()) {
		t.Fatal("replay ended in a different state")
	}
}

// checkSequencers: every holder's sequencer is current; a holding that
// ended is stale; and a Fence fed every grant in order accepts them all
// (generations only grow per node instance).
func checkSequencers(tbl *Table, pre, post State, grants []Grant, inst map[string]uint64, f *Fence) error {
	for _, l := range post.Locks {
		for _, h := range l.Holders {
			s, err := tbl.Sequencer(l.Path, h.Holder, inst[l.Path])
			if err == nil {
				err = tbl.CheckSequencer(s, inst[l.Path])
			}
			if err != nil {
				return fmt.Errorf("holder %v of %s: %w", h.Holder, l.Path, err)
			}
		}
	}
	for _, l := range pre.Locks {
		if !l.Held() {
			continue
		}
		now := lockOf(post, l.Path)
		current := now.Held() && now.Generation == l.Generation
		s := Sequencer{Path: l.Path, Instance: inst[l.Path], Mode: l.Mode, Generation: l.Generation}
		if err := tbl.CheckSequencer(s, inst[l.Path]); (err == nil) != current {
			return fmt.Errorf("CheckSequencer(%v) = %v; still held: %v", s, err, current)
		}
	}
	for _, g := range grants {
		if err := f.Check(Sequencer{Path: g.Path, Instance: inst[g.Path], Mode: g.Mode, Generation: g.Generation}); err != nil {
			return err
		}
	}
	return nil
}

func allGrants(o outcome) []Grant { return append(slices.Clone(o.Res.Others), o.Grants...) }

// checkGrants checks, without the model, the rules an operation's grants
// must keep: generations never go back, bump by one exactly on free → held
// and otherwise only join a shared holding; granted holders hold the lock
// afterwards (so they were compatible: checkTable allows one exclusive
// holder or only shared ones); and
// waiters leave each queue only from its head, in order, except those the
// operation itself removed.
func checkGrants(o op, pre, post State, out outcome, lastGen map[string]uint64) error {
	if o.kind == "delete" {
		delete(lastGen, o.path)
		return nil
	}
	grants := allGrants(out)
	if o.kind == "acquire" && out.Res.Granted && !out.Res.Already {
		grants = append(grants, Grant{Path: o.path, Holder: o.h, Mode: o.req.Mode, Generation: out.Res.Generation})
	}
	cur := map[string]uint64{}
	for _, l := range pre.Locks {
		if l.Generation < lastGen[l.Path] {
			return fmt.Errorf("%s: generation went back from %d to %d", l.Path, lastGen[l.Path], l.Generation)
		}
		cur[l.Path] = l.Generation
	}
	for _, g := range grants {
		switch last := cur[g.Path]; {
		case g.Generation == last+1:
			cur[g.Path] = g.Generation
		case g.Generation == last && g.Mode == Shared && last > 0:
		default:
			return fmt.Errorf("grant %v after generation %d", g, last)
		}
		l := lockOf(post, g.Path)
		if l.Generation != g.Generation || l.Mode != g.Mode || !slices.ContainsFunc(l.Holders, func(h Hold) bool { return h.Holder == g.Holder }) {
			return fmt.Errorf("grant %v, but the lock is %s", g, fmtLock(l))
		}
	}
	for _, l := range post.Locks {
		if l.Generation != cur[l.Path] {
			return fmt.Errorf("%s: generation %d without a grant (was %d)", l.Path, l.Generation, cur[l.Path])
		}
		lastGen[l.Path] = l.Generation
	}
	for _, p := range pathsOf(pre, post) {
		if err := checkFIFO(o, lockOf(pre, p), lockOf(post, p), grants); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// checkFIFO: the pre-op queue minus the waiters the operation removed must
// equal the waiters it granted followed by the post-op queue (plus a newly
// queued request at the end).
func checkFIFO(o op, pre, post Lock, grants []Grant) error {
	var granted, before, after []uint64
	for _, g := range grants {
		if g.Path == pre.Path && g.Waiter != 0 {
			granted = append(granted, g.Waiter)
		}
	}
	for _, w := range pre.Waiters {
		removed := o.kind == "cancel" && pre.Path == o.path && w.ID == o.waiter ||
			o.kind == "session-lost" && w.Holder.Session == o.session ||
			(o.kind == "handle-lost" || o.kind == "handle-closed") && w.Holder == o.h
		if !removed {
			before = append(before, w.ID)
		}
	}
	after = append(after, granted...)
	for _, w := range post.Waiters {
		if !slices.ContainsFunc(pre.Waiters, func(x Waiter) bool { return x.ID == w.ID }) {
			before = append(before, w.ID) // queued by this op: at the tail
		}
		after = append(after, w.ID)
	}
	if !slices.Equal(before, after) {
		return fmt.Errorf("queue %v → granted %v, queue %v: not FIFO", pre.Waiters, granted, post.Waiters)
	}
	return nil
}

func lockOf(s State, path string) Lock {
	if i := slices.IndexFunc(s.Locks, func(l Lock) bool { return l.Path == path }); i >= 0 {
		return s.Locks[i]
	}
	return Lock{Path: path}
}

func pathsOf(a, b State) []string {
	var ps []string
	for _, l := range append(slices.Clone(a.Locks), b.Locks...) {
		ps = append(ps, l.Path)
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// gen makes random operations over a few paths, sessions and handles,
// biased towards ones that do something (releasing actual holders,
// cancelling actual waiters).
type gen struct {
	rng *rand.Rand
	now int64
}

var (
	genPaths  = []string{"/a", "/b", "/c"}
	genDelays = []time.Duration{0, 500 * time.Millisecond, time.Second, 3 * time.Second}
)

func (g *gen) holder() Holder { return hd(1+g.rng.Uint64N(4), 1+g.rng.Uint64N(2)) }

func (g *gen) next(tbl *Table) op {
	g.now += int64(g.rng.IntN(9)) * int64(250*time.Millisecond)
	if g.rng.IntN(50) == 0 { // a new leader whose clock is behind
		g.now = max(0, g.now-int64(g.rng.IntN(5))*int64(time.Second))
	}
	o := op{path: genPaths[g.rng.IntN(len(genPaths))], h: g.holder(), now: g.now}
	l, _ := tbl.Lock(o.path)
	switch r := g.rng.IntN(100); {
	case r < 45:
		mode := []Mode{Exclusive, Shared}[g.rng.IntN(2)]
		if g.rng.IntN(100) == 0 {
			mode = 0 // an invalid request now and then
		}
		o.kind = "acquire"
		o.req = Request{Path: o.path, Holder: o.h, Mode: mode, LockDelay: genDelays[g.rng.IntN(len(genDelays))], Wait: g.rng.IntN(4) > 0}
	case r < 65:
		o.kind = "release"
		if len(l.Holders) > 0 && g.rng.IntN(5) > 0 {
			o.h = l.Holders[g.rng.IntN(len(l.Holders))].Holder
		}
	case r < 75:
		o.kind = "cancel"
		o.waiter = g.rng.Uint64N(tbl.State().LastWaiter + 2)
		if len(l.Waiters) > 0 && g.rng.IntN(4) > 0 {
			o.waiter = l.Waiters[g.rng.IntN(len(l.Waiters))].ID
		}
	case r < 80:
		o.kind, o.session = "session-lost", o.h.Session
	case r < 85:
		o.kind = "handle-lost"
	case r < 90:
		o.kind = "handle-closed"
	case r < 98:
		o.kind = "tick"
		if d, ok := tbl.NextDeadline(); ok && g.rng.IntN(2) == 0 {
			g.now = max(g.now, d)
			o.now = g.now
		}
	default:
		o.kind = "delete"
	}
	return o
}
