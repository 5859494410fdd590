package fsm

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/haspcell/hasp/fsapi"
)

// ev is an event without its stat, for comparisons.
type ev struct {
	Rev     uint64
	Idx     uint32
	Kind    fsapi.ChangeKind
	Path    string
	Session uint64
	Mode    uint8
}

func (e ev) String() string {
	return fmt.Sprintf("%d.%d %v %s s%d m%d", e.Rev, e.Idx, e.Kind, e.Path, e.Session, e.Mode)
}

func evs(es []fsapi.Event) []ev {
	var out []ev
	for _, e := range es {
		out = append(out, ev{e.Revision, e.Index, e.Kind, e.Path, e.Session, e.Mode})
	}
	return out
}

// eventsOf returns the events the tester's last command recorded.
func (h *tester) eventsOf() []fsapi.Event {
	h.t.Helper()
	b := h.f.EventsSince(h.index, 0, EventFilter{Path: "/", Recursive: true}, 0, 0)
	if b.Compacted || b.Last != h.index {
		h.t.Fatalf("history: %+v after index %d", b, h.index)
	}
	return b.Events
}

// wantEvents applies cmd and checks the events it yields (their revision is
// the entry's index, their Index their position).
func (h *tester) wantEvents(cmd any, wantKind ErrKind, want ...ev) []fsapi.Event {
	h.t.Helper()
	r := h.apply(cmd)
	if r.ErrKind != wantKind {
		h.t.Fatalf("index %d: %T: got %v (%s), want %v", h.index, cmd, r.ErrKind, r.ErrMsg, wantKind)
	}
	for i := range want {
		want[i].Rev, want[i].Idx = h.index, uint32(i)
	}
	got := h.eventsOf()
	if !reflect.DeepEqual(evs(got), want) && !(len(got) == 0 && len(want) == 0) {
		h.t.Fatalf("index %d: %T: events\n%v\nwant\n%v", h.index, cmd, evs(got), want)
	}
	// Each event's stat is the node as the command left it (or, deleted,
	// as it last was).
	v := h.f.View()
	for j, e := range got {
		n, ok := v.Get(e.Path)
		switch {
		case e.Kind == fsapi.ChangeDeleted:
			if ok && n.Stat.Instance == e.Stat.Instance {
				h.t.Fatalf("deleted event for %s, which still exists", e.Path)
			}
		case j == lastFor(e.Path, got) && (!ok || n.Stat != e.Stat):
			h.t.Fatalf("event %v: stat %+v, node %+v", e, e.Stat, n)
		}
	}
	return got
}

// lastFor is the position of the last event on path in es.
func lastFor(path string, es []fsapi.Event) int {
	last := -1
	for j, e := range es {
		if e.Path == path {
			last = j
		}
	}
	return last
}

func TestEventsPerCommand(t *testing.T) {
	const ok = ErrKindOK
	h := newTester(t, Config{})
	C, M, D := fsapi.ChangeCreated, fsapi.ChangeModified, fsapi.ChangeDeleted
	LA, LR, LF := fsapi.ChangeLockAcquired, fsapi.ChangeLockRequested, fsapi.ChangeLockReleased

	h.wantEvents(&CreateSession{Time: 300, LeaseMillis: 12000}, ok) // session 3
	h.wantEvents(&Noop{Time: 1}, ok)
	e := h.wantEvents(mkfile(s1, "/f", "x"), ok, ev{Kind: C, Path: "/f"})
	if e[0].Stat.Instance != h.index || e[0].Stat.Size != 1 || e[0].Stat.ContentGeneration != 1 {
		t.Fatalf("created stat %+v", e[0].Stat)
	}
	h.wantEvents(mkfile(s1, "/f", "x"), ErrKindExist) // failed: no event
	open := &Open{Meta: WriteMeta{Session: s1}, Path: "/f", Create: uint8(fsapi.CreateMay)}
	h.wantEvents(open, ok) // an existing node: nothing changes
	e = h.wantEvents(set(s2, "/f", "yy"), ok, ev{Kind: M, Path: "/f"})
	if e[0].Stat.ContentGeneration != 2 || e[0].Stat.ModifiedRevision != h.index {
		t.Fatalf("modified stat %+v", e[0].Stat)
	}
	h.wantEvents(&SetContents{Meta: WriteMeta{Session: s1}, Path: "/f", Data: []byte("z"), IfGeneration: 1}, ErrKindGenerationMismatch)
	h.wantEvents(mkdir(s1, "/d"), ok, ev{Kind: C, Path: "/d"})
	h.wantEvents(set(s1, "/d", "x"), ErrKindIsDir)

	// Exactly-once: a retried write is answered from the reply table and
	// yields nothing.
	w := set(s1, "/f", "again")
	w.Meta = seq(w.Meta, 7, 1)
	h.wantEvents(w, ok, ev{Kind: M, Path: "/f"})
	h.wantEvents(w, ok)

	// Delete, and the cascade of emptied ephemeral directories, child
	// first.
	h.wantEvents(ephDir(s2, "/d/e"), ok, ev{Kind: C, Path: "/d/e"})
	h.wantEvents(ephDir(s2, "/d/e/g"), ok, ev{Kind: C, Path: "/d/e/g"})
	h.wantEvents(mkfile(s1, "/d/e/g/h", ""), ok, ev{Kind: C, Path: "/d/e/g/h"})
	e = h.wantEvents(del(s1, "/d/e/g/h"), ok, ev{Kind: D, Path: "/d/e/g/h"}, ev{Kind: D, Path: "/d/e/g"}, ev{Kind: D, Path: "/d/e"})
	if e[1].Stat.Children != 0 || e[2].Stat.EphemeralOwner != s2 || e[0].Stat.Instance == 0 {
		t.Fatalf("deleted stats %+v", e)
	}
	h.wantEvents(del(s1, "/nope"), ErrKindNotExist)

	// Locks: an immediate grant, a queued request, a release and the
	// grants to waiters it causes, in that order.
	const s3 uint64 = 3
	h.wantEvents(acq(s1, "/f", 1, excl, true), ok, ev{Kind: LA, Path: "/f", Session: s1, Mode: excl})
	if g := h.lockGen("/f"); g != 1 {
		t.Fatalf("lock generation %d", g)
	}
	h.wantEvents(acq(s1, "/f", 1, excl, true), ok) // already held: nothing changes
	h.wantEvents(acq(s2, "/f", 1, shared, false), ErrKindHeld)
	h.wantEvents(acq(s2, "/f", 1, shared, true), ok, ev{Kind: LR, Path: "/f", Session: s2, Mode: shared})
	h.wantEvents(acq(s3, "/f", 4, shared, true), ok, ev{Kind: LR, Path: "/f", Session: s3, Mode: shared})
	e = h.wantEvents(rel(s1, "/f", 1), ok, ev{Kind: LF, Path: "/f", Session: s1, Mode: excl},
		ev{Kind: LA, Path: "/f", Session: s2, Mode: shared}, ev{Kind: LA, Path: "/f", Session: s3, Mode: shared})
	if e[0].Stat.LockGeneration != 1 || e[1].Stat.LockGeneration != 2 || e[2].Stat.LockGeneration != 2 {
		t.Fatalf("lock generation in events: %+v", e)
	}

	// A session that ends: its locks go (each a release event; a queued
	// request just leaves), then its ephemeral nodes, deepest first.
	h.wantEvents(ephDir(s3, "/x"), ok, ev{Kind: C, Path: "/x"})
	h.wantEvents(ephFile(s3, "/x/y"), ok, ev{Kind: C, Path: "/x/y"})
	h.wantEvents(acq(s1, "/d", 9, excl, true), ok, ev{Kind: LA, Path: "/d", Session: s1, Mode: excl})
	h.wantEvents(acq(s3, "/d", 1, excl, true), ok, ev{Kind: LR, Path: "/d", Session: s3, Mode: excl})
	h.wantEvents(&CloseSession{Meta: WriteMeta{Session: s3, Time: 5}, Expired: true}, ok,
		ev{Kind: LF, Path: "/f", Session: s3, Mode: shared}, ev{Kind: D, Path: "/x/y"}, ev{Kind: D, Path: "/x"})
	h.wantEvents(&CloseSession{Meta: WriteMeta{Session: s2, Time: 5}}, ok, ev{Kind: LF, Path: "/f", Session: s2, Mode: shared})
	h.wantEvents(rel(s1, "/f", 1), ErrKindNotHeld)
	checkInvariants(t, h.f)
}

// TestEventsCompleteAndDeterministic applies one random log to two FSMs
// and checks that they record the same events, and that the events
// describe every change: replaying them onto an empty namespace rebuilds
// every node's stat (except child counts, which no event carries: a
// consumer derives child changes from the children's events).
func TestEventsCompleteAndDeterministic(t *testing.T) {
	seed := testSeed(t)
	a, b := New(Config{ContentLimit: 64}), New(Config{ContentLimit: 64})
	g := newCmdGen(seed, 1)
	root, _ := a.View().Get("/")
	model := map[string]fsapi.Stat{"/": root.Stat}
	var last uint64
	for range 3000 {
		index := g.index
		cmd := g.next()
		data, err := Encode(cmdType(cmd), cmd)
		if err != nil {
			t.Fatal(err)
		}
		a.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
		b.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
		ba := a.EventsSince(last+1, 0, EventFilter{Path: "/", Recursive: true}, 0, 0)
		bb := b.EventsSince(last+1, 0, EventFilter{Path: "/", Recursive: true}, 0, 0)
		if !reflect.DeepEqual(ba, bb) {
			t.Fatalf("index %d: replicas differ:\n%+v\n%+v", index, ba, bb)
		}
		for _, e := range ba.Events {
			if e.Revision != index {
				t.Fatalf("event %+v at index %d", e, index)
			}
			was := model[e.Path]
			was.Children = e.Stat.Children // no event carries child counts
			switch e.Kind {
			case fsapi.ChangeDeleted:
				if was != e.Stat {
					t.Fatalf("index %d: deleted %s with stat %+v; it was %+v", index, e.Path, e.Stat, model[e.Path])
				}
				delete(model, e.Path)
			case fsapi.ChangeLockRequested:
				if was != e.Stat {
					t.Fatalf("index %d: lock request on %s changed its stat", index, e.Path)
				}
			default:
				model[e.Path] = e.Stat
			}
		}
		last = index
		// The model is the namespace, child counts aside.
		got := map[string]fsapi.Stat{}
		a.View().walk(func(p string, n *Node) {
			st := n.Stat
			st.Children = model[p].Children
			got[p] = st
		})
		if !reflect.DeepEqual(got, model) {
			t.Fatalf("index %d (%T): events do not rebuild the namespace:\nstate  %+v\nevents %+v", index, cmd, got, model)
		}
	}
	if a.EventCount() == 0 {
		t.Fatal("no events")
	}
}

func TestEventHistoryBounded(t *testing.T) {
	h := newTester(t, Config{EventHistory: 8})
	h.must(mkdir(s1, "/d"))
	h.must(ephDir(s2, "/d/e"))
	h.must(ephFile(s2, "/d/e/f"))
	cascade := h.index + 1
	h.must(del(s1, "/d/e/f")) // two events at one revision
	first := h.index + 2      // after a failed write
	for i := range 6 {
		h.apply(set(s1, "/d", "")) // fails (a directory): no event
		h.must(mkfile(s1, fmt.Sprintf("/d/f%d", i), ""))
	}
	all := EventFilter{Path: "/", Recursive: true}
	// 3 + 2 + 6 events, 8 kept: the first three are gone.
	if c := h.f.EventCount(); c != 8 {
		t.Fatalf("%d events held", c)
	}
	if fl := h.f.EventFloor(); fl != cascade {
		t.Fatalf("floor %d, want %d", fl, cascade)
	}
	h.must(mkfile(s1, "/d/g", "")) // evicts half of the cascade: that revision is no longer complete
	if fl := h.f.EventFloor(); fl != cascade+1 {
		t.Fatalf("floor %d, want %d (past the half-evicted revision)", fl, cascade+1)
	}
	h.must(mkfile(s1, "/d/h", ""))
	if b := h.f.EventsSince(cascade, 0, all, 0, 0); !b.Compacted || b.Floor != cascade+1 || b.Last != h.index || len(b.Events) != 0 {
		t.Fatalf("since the evicted revision: %+v", b)
	}
	b := h.f.EventsSince(cascade+1, 0, all, 0, 0)
	if b.Compacted || len(b.Events) != 8 || b.Events[0].Revision != first || b.Last != h.index {
		t.Fatalf("since the floor: %+v", b)
	}
	for range 1000 {
		h.must(set(s1, "/d/g", "x"))
	}
	if c := h.f.EventCount(); c != 8 || len(h.f.events.buf) != 8 {
		t.Fatalf("%d events held in a buffer of %d", c, len(h.f.events.buf))
	}
	if b := h.f.EventsSince(h.f.EventFloor(), 0, all, 0, 0); len(b.Events) != 8 || b.Events[7].Revision != h.index {
		t.Fatalf("after wrapping: %+v", evs(b.Events))
	}
}

func TestEventsSinceFilters(t *testing.T) {
	h := newTester(t, Config{})
	base := h.index
	h.must(mkdir(s1, "/a"))
	h.must(mkdir(s1, "/a/b"))
	h.must(mkfile(s1, "/a/b/c", ""))
	h.must(mkfile(s1, "/a/x", ""))
	h.must(mkfile(s1, "/ab", "")) // shares a prefix with /a, but is not below it
	h.must(set(s1, "/a/b/c", "1"))
	paths := func(f EventFilter, from uint64, fromIndex uint32, limit, bytes int) ([]string, bool) {
		b := h.f.EventsSince(from, fromIndex, f, limit, bytes)
		var out []string
		for _, e := range b.Events {
			out = append(out, e.Path)
		}
		return out, b.More
	}
	cases := []struct {
		f    EventFilter
		want []string
	}{
		{EventFilter{Path: "/a"}, []string{"/a"}},
		{EventFilter{Path: "/a", Children: true}, []string{"/a", "/a/b", "/a/x"}},
		{EventFilter{Path: "/a", Recursive: true}, []string{"/a", "/a/b", "/a/b/c", "/a/x", "/a/b/c"}},
		{EventFilter{Path: "/", Children: true}, []string{"/a", "/ab"}},
		{EventFilter{Path: "/", Recursive: true}, []string{"/a", "/a/b", "/a/b/c", "/a/x", "/ab", "/a/b/c"}},
		{EventFilter{Path: "/a/b/c"}, []string{"/a/b/c", "/a/b/c"}},
		{EventFilter{Path: "/nope", Recursive: true}, nil},
	}
	for _, c := range cases {
		if got, more := paths(c.f, base+1, 0, 0, 0); !reflect.DeepEqual(got, c.want) || more {
			t.Errorf("%+v: %v (more %v), want %v", c.f, got, more, c.want)
		}
	}
	all := EventFilter{Path: "/", Recursive: true}
	if got, more := paths(all, base+1, 0, 2, 0); !reflect.DeepEqual(got, []string{"/a", "/a/b"}) || !more {
		t.Errorf("limit 2: %v %v", got, more)
	}
	if got, more := paths(all, base+1, 0, 0, 1); !reflect.DeepEqual(got, []string{"/a"}) || !more {
		t.Errorf("1 byte: %v %v (at least one event)", got, more)
	}
	if got, _ := paths(all, base+3, 0, 0, 0); len(got) != 4 || got[0] != "/a/b/c" {
		t.Errorf("from a revision: %v", got)
	}
	if got, _ := paths(all, base+3, 1, 0, 0); len(got) != 3 || got[0] != "/a/x" {
		t.Errorf("past the index: %v", got)
	}
	if got, _ := paths(all, h.index+1, 0, 0, 0); got != nil {
		t.Errorf("from the future: %v", got)
	}
	// Events at one revision are numbered: the cascade.
	h.must(ephDir(s2, "/a/e"))
	h.must(ephFile(s2, "/a/e/f"))
	h.must(&CloseSession{Meta: WriteMeta{Session: s2}})
	b := h.f.EventsSince(h.index, 0, all, 0, 0)
	if len(b.Events) != 2 || b.Events[0].Index != 0 || b.Events[1].Index != 1 || b.Events[1].Path != "/a/e" {
		t.Fatalf("cascade: %v", evs(b.Events))
	}
	if b := h.f.EventsSince(h.index, 1, all, 0, 0); len(b.Events) != 1 || b.Events[0].Path != "/a/e" {
		t.Fatalf("cascade from index 1: %v", evs(b.Events))
	}
}

func TestEventHistoryRestore(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkdir(s1, "/d"))
	h.must(mkfile(s1, "/d/f", "x"))
	snapAt := h.index
	snap := snapshotBytes(t, h.f)
	other := New(Config{})
	w := other.WaitEvents(EventFilter{Path: "/elsewhere"})
	defer w.Stop()
	if err := other.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.C:
	default:
		t.Fatal("restore did not wake a waiter")
	}
	if other.EventCount() != 0 || other.EventFloor() != snapAt+1 || other.EventLast() != snapAt {
		t.Fatalf("after restore: %d events, floor %d, last %d", other.EventCount(), other.EventFloor(), other.EventLast())
	}
	all := EventFilter{Path: "/", Recursive: true}
	if b := other.EventsSince(snapAt, 0, all, 0, 0); !b.Compacted || b.Floor != snapAt+1 {
		t.Fatalf("before the snapshot: %+v", b)
	}
	// Entries applied after the snapshot fill both histories alike.
	cmds := []any{set(s1, "/d/f", "y"), &Noop{Time: 1}, del(s2, "/d/f")}
	for i, c := range cmds {
		h.must(c)
		other.Apply(&raft.Log{Index: snapAt + 1 + uint64(i), Type: raft.LogCommand, Data: encode(t, c)})
	}
	ba, bb := h.f.EventsSince(snapAt+1, 0, all, 0, 0), other.EventsSince(snapAt+1, 0, all, 0, 0)
	if !reflect.DeepEqual(ba.Events, bb.Events) || len(bb.Events) != 2 || bb.Last != h.index {
		t.Fatalf("after restore:\n%v\n%v", evs(ba.Events), evs(bb.Events))
	}
	// A restore also ends the old history on the replica that had it.
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if h.f.EventCount() != 0 || h.f.EventFloor() != snapAt+1 {
		t.Fatalf("restored over a history: %d events, floor %d", h.f.EventCount(), h.f.EventFloor())
	}
}

func TestEventWaiters(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkdir(s1, "/a"))
	h.must(mkdir(s1, "/a/b"))
	waiters := map[string]EventFilter{
		"exact /a/b":     {Path: "/a/b"},
		"exact /a/b/c":   {Path: "/a/b/c"},
		"children /a":    {Path: "/a", Children: true},
		"children /a/b":  {Path: "/a/b", Children: true},
		"recursive /":    {Path: "/", Recursive: true},
		"recursive /a":   {Path: "/a", Recursive: true},
		"recursive /a/x": {Path: "/a/x", Recursive: true},
		"exact /":        {Path: "/"},
	}
	ws := map[string]*EventWaiter{}
	for name, f := range waiters {
		ws[name] = h.f.WaitEvents(f)
	}
	if n := h.f.EventWaiters(); n != len(waiters) {
		t.Fatalf("%d waiters", n)
	}
	woken := func() []string {
		var out []string
		for name, w := range ws {
			select {
			case <-w.C:
				out = append(out, name)
			default:
			}
		}
		return sortStrings(out)
	}
	check := func(cmd any, want ...string) {
		t.Helper()
		h.must(cmd)
		if got := woken(); !reflect.DeepEqual(got, sortStrings(want)) {
			t.Fatalf("%T: woke %v, want %v", cmd, got, sortStrings(want))
		}
	}
	check(mkfile(s1, "/a/b/c", ""), "exact /a/b/c", "children /a/b", "recursive /", "recursive /a")
	check(set(s1, "/a/b/c", "x"), "exact /a/b/c", "children /a/b", "recursive /", "recursive /a")
	check(mkfile(s1, "/a/y", ""), "children /a", "recursive /", "recursive /a")
	check(mkfile(s1, "/a/x", ""), "children /a", "recursive /", "recursive /a", "recursive /a/x")
	check(&Noop{Time: 1})
	check(mkfile(s1, "/z", ""), "recursive /")
	check(acq(s1, "/a/b", 1, excl, true), "exact /a/b", "children /a/b", "children /a", "recursive /", "recursive /a")
	// A wake-up nobody took is kept (once), not lost.
	h.must(set(s1, "/a/b/c", "y"))
	h.must(set(s1, "/a/b/c", "z"))
	if got := woken(); len(got) != 4 {
		t.Fatalf("kept wake-ups: %v", got)
	}
	for _, w := range ws {
		w.Stop()
		w.Stop() // idempotent
	}
	if n := h.f.EventWaiters(); n != 0 || len(h.f.events.exact)+len(h.f.events.children)+len(h.f.events.recursive) != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestEventWaiterNoLostWakeup runs readers that follow the history the way
// the master's watch does (register, read, wait) while entries are applied
// at full speed, with a ring smaller than the run: each must see every
// event of its path exactly once, in order, or be told it was compacted.
func TestEventWaiterNoLostWakeup(t *testing.T) {
	h := newTester(t, Config{EventHistory: 64})
	const files, writes = 4, 3000
	for k := range files {
		h.must(mkfile(s1, fmt.Sprintf("/f%d", k), ""))
	}
	start := h.index + 1
	var wg sync.WaitGroup
	errs := make(chan error, files)
	var seen [files]atomic.Uint64 // writes each reader has consumed
	for k := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/f%d", k)
			w := h.f.WaitEvents(EventFilter{Path: path})
			defer w.Stop()
			defer seen[k].Store(math.MaxUint32) // a reader that gives up does not hold the writer
			from, gen := start, uint64(1)
			deadline := time.After(30 * time.Second)
			for gen < 1+writes/files {
				b := h.f.EventsSince(from, 0, EventFilter{Path: path}, 7, 0)
				if b.Compacted {
					errs <- fmt.Errorf("%s: compacted at %d (floor %d): the reader fell behind a ring of 64", path, from, b.Floor)
					return
				}
				for _, e := range b.Events {
					if e.Stat.ContentGeneration != gen+1 {
						errs <- fmt.Errorf("%s: generation %d after %d", path, e.Stat.ContentGeneration, gen)
						return
					}
					gen, from = e.Stat.ContentGeneration, e.Revision+1
					seen[k].Store(gen - 1)
				}
				if len(b.Events) == 0 {
					select {
					case <-w.C:
					case <-deadline:
						errs <- fmt.Errorf("%s: stuck at generation %d (from %d, last %d)", path, gen, from, h.f.EventLast())
						return
					}
				}
			}
		}()
	}
	// The writer runs at most lag writes per file ahead of each reader, so
	// the ring of 64 never passes a reader that is woken as it should be
	// (a sleep-paced writer outran the readers on a loaded CI machine). A
	// lost wakeup still shows: the reader never advances and the writer
	// gives up.
	const lag = 8
	for n := range writes {
		for k := range files {
			done := uint64((n + files - 1 - k) / files) // writes to /fk before this one
			for stuck := time.Now().Add(30 * time.Second); seen[k].Load()+lag < done; {
				if time.Now().After(stuck) {
					t.Fatalf("/f%d: reader stuck at %d of %d writes", k, seen[k].Load(), done)
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
		h.must(set(s1, fmt.Sprintf("/f%d", n%files), "x"))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestEventWaiterQuietPathNotCompacted: a reader of a quiet path that
// moves its position to the history's Last whenever woken is never
// compacted, however much happens elsewhere: the history wakes every
// waiter before the ring can pass a position read that way.
func TestEventWaiterQuietPathNotCompacted(t *testing.T) {
	h := newTester(t, Config{EventHistory: 8})
	h.must(mkfile(s1, "/busy", ""))
	quiet := EventFilter{Path: "/quiet"}
	w := h.f.WaitEvents(quiet)
	defer w.Stop()
	from, wakes := h.index+1, 0
	read := func() EventBatch {
		b := h.f.EventsSince(from, 0, quiet, 0, 0)
		if b.Compacted {
			t.Fatalf("quiet reader compacted at %d (floor %d, last %d)", from, b.Floor, b.Last)
		}
		from = max(from, b.Last+1)
		return b
	}
	read()
	for range 200 {
		h.must(set(s1, "/busy", "x"))
		select {
		case <-w.C:
			wakes++
			read()
		default:
		}
	}
	if wakes < 200/2-1 {
		t.Fatalf("woken %d times in 200 events with a ring of 8", wakes)
	}
	h.must(mkfile(s1, "/quiet", ""))
	<-w.C
	if b := read(); len(b.Events) != 1 || b.Events[0].Kind != fsapi.ChangeCreated {
		t.Fatalf("quiet event: %v", evs(b.Events))
	}
}
