package locks

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/haspcell/hasp/fsapi"
)

func excl(path string, h Holder, wait bool) Request {
	return Request{Path: path, Holder: h, Mode: Exclusive, LockDelay: DefaultLockDelay, Wait: wait}
}

func shared(path string, h Holder, wait bool) Request {
	return Request{Path: path, Holder: h, Mode: Shared, LockDelay: DefaultLockDelay, Wait: wait}
}

// acquire runs Acquire and fails the test on an unexpected error.
func acquire(t *testing.T, tbl *Table, req Request, now int64) Result {
	t.Helper()
	res, err := tbl.Acquire(req, now)
	if err != nil {
		t.Fatalf("acquire %+v: %v", req, err)
	}
	checkTable(t, tbl)
	return res
}

func release(t *testing.T, tbl *Table, path string, h Holder, now int64) []Grant {
	t.Helper()
	gs, err := tbl.Release(path, h, now)
	if err != nil {
		t.Fatalf("release %s %v: %v", path, h, err)
	}
	checkTable(t, tbl)
	return gs
}

func TestValidateLockDelay(t *testing.T) {
	tests := []struct {
		d  time.Duration
		ok bool
	}{
		{0, true},
		{time.Nanosecond, true},
		{DefaultLockDelay, true},
		{MaxLockDelay, true},
		{MaxLockDelay + 1, false},
		{-1, false},
		{-DefaultLockDelay, false},
	}
	for _, tc := range tests {
		t.Run(tc.d.String(), func(t *testing.T) {
			err := ValidateLockDelay(tc.d)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateLockDelay(%v) = %v, want ok=%v", tc.d, err, tc.ok)
			}
			if err != nil && !errors.Is(err, fsapi.ErrBadRequest) {
				t.Fatalf("error %v does not wrap fsapi.ErrBadRequest", err)
			}
		})
	}
	if DefaultLockDelay != 10*time.Second || MaxLockDelay != time.Minute {
		t.Fatalf("defaults changed: %v, %v", DefaultLockDelay, MaxLockDelay)
	}
}

func TestAcquireRejectsBadRequests(t *testing.T) {
	good := excl("/a", hd(1, 1), true)
	tests := []struct {
		name   string
		change func(*Request)
		also   error
	}{
		{"empty path", func(r *Request) { r.Path = "" }, fsapi.ErrBadName},
		{"relative path", func(r *Request) { r.Path = "a" }, fsapi.ErrBadName},
		{"trailing slash", func(r *Request) { r.Path = "/a/" }, fsapi.ErrBadName},
		{"no session", func(r *Request) { r.Holder.Session = 0 }, nil},
		{"mode zero", func(r *Request) { r.Mode = 0 }, nil},
		{"mode 3", func(r *Request) { r.Mode = 3 }, nil},
		{"negative delay", func(r *Request) { r.LockDelay = -time.Second }, nil},
		{"delay too long", func(r *Request) { r.LockDelay = 2 * time.Minute }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := NewTable()
			req := good
			tc.change(&req)
			_, err := tbl.Acquire(req, 0)
			if !errors.Is(err, fsapi.ErrBadRequest) || tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("got %v, want fsapi.ErrBadRequest (and %v)", err, tc.also)
			}
			if st := tbl.State(); len(st.Locks) != 0 || st.LastWaiter != 0 {
				t.Fatalf("a rejected request changed the table: %+v", st)
			}
		})
	}
}

// TestAcquireOutcomes covers grant / queue / fail for every kind of lock
// state, in both the wait and the try form.
func TestAcquireOutcomes(t *testing.T) {
	a, b, c := hd(1, 1), hd(2, 1), hd(3, 1)
	lost := func(tbl *Table) { // a held it exclusively and was lost at t=0
		acquire(t, tbl, excl("/a", a, true), 0)
		tbl.SessionLost(1, 0)
	}
	tests := []struct {
		name  string
		setup func(*Table)
		req   Request
		now   time.Duration
		want  string // "granted", "queued", or the error wanted
		isErr error
	}{
		{"free", func(*Table) {}, excl("/a", c, false), 0, "granted", nil},
		{"free shared", func(*Table) {}, shared("/a", c, false), 0, "granted", nil},
		{"held excl, try", func(tbl *Table) { acquire(t, tbl, excl("/a", a, true), 0) }, shared("/a", c, false), 0, "", ErrHeld},
		{"held excl, wait", func(tbl *Table) { acquire(t, tbl, excl("/a", a, true), 0) }, shared("/a", c, true), 0, "queued", nil},
		{"held shared, shared joins", func(tbl *Table) { acquire(t, tbl, shared("/a", a, true), 0) }, shared("/a", c, false), 0, "granted", nil},
		{"held shared, excl try", func(tbl *Table) { acquire(t, tbl, shared("/a", a, true), 0) }, excl("/a", c, false), 0, "", ErrHeld},
		{"held shared, excl queued, shared try does not overtake", func(tbl *Table) {
			acquire(t, tbl, shared("/a", a, true), 0)
			acquire(t, tbl, excl("/a", b, true), 0)
		}, shared("/a", c, false), 0, "", ErrHeld},
		{"held shared, excl queued, shared waits", func(tbl *Table) {
			acquire(t, tbl, shared("/a", a, true), 0)
			acquire(t, tbl, excl("/a", b, true), 0)
		}, shared("/a", c, true), 0, "queued", nil},
		{"lock-delay, try", lost, excl("/a", c, false), 5 * time.Second, "", ErrLockDelay},
		{"lock-delay, shared try", lost, shared("/a", c, false), 5 * time.Second, "", ErrLockDelay},
		{"lock-delay, wait", lost, excl("/a", c, true), 5 * time.Second, "queued", nil},
		{"lock-delay ended", lost, excl("/a", c, false), DefaultLockDelay, "granted", nil},
		{"released, no delay", func(tbl *Table) {
			acquire(t, tbl, excl("/a", a, true), 0)
			release(t, tbl, "/a", a, 0)
		}, excl("/a", c, false), 0, "granted", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := NewTable()
			tc.setup(tbl)
			res, err := tbl.Acquire(tc.req, at(tc.now))
			checkTable(t, tbl)
			switch {
			case tc.isErr != nil:
				if !errors.Is(err, tc.isErr) {
					t.Fatalf("got %+v, %v; want %v", res, err, tc.isErr)
				}
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want == "granted" && !res.Granted, tc.want == "queued" && (res.Granted || res.Waiter == 0):
				t.Fatalf("got %+v, want %s", res, tc.want)
			}
		})
	}
}

func TestDelayErrorSaysUntilWhen(t *testing.T) {
	tbl := NewTable()
	acquire(t, tbl, Request{Path: "/a", Holder: hd(1, 1), Mode: Exclusive, LockDelay: 7 * time.Second}, at(time.Second))
	tbl.SessionLost(1, at(2*time.Second))
	_, err := tbl.Acquire(excl("/a", hd(2, 1), false), at(3*time.Second))
	var de *DelayError
	if !errors.As(err, &de) || de.Until != at(9*time.Second) || de.Path != "/a" {
		t.Fatalf("got %v (%+v), want a DelayError until 9s", err, de)
	}
	if want := "1970-01-01T00:00:09Z"; !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q does not say %s", err, want)
	}
}

func TestReleaseByNonHolder(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*Table)
		h     Holder
	}{
		{"unknown lock", func(*Table) {}, hd(1, 1)},
		{"other holder", func(tbl *Table) { acquire(t, tbl, excl("/a", hd(2, 1), true), 0) }, hd(1, 1)},
		{"other handle of the holding session", func(tbl *Table) { acquire(t, tbl, excl("/a", hd(1, 2), true), 0) }, hd(1, 1)},
		{"a waiter", func(tbl *Table) {
			acquire(t, tbl, excl("/a", hd(2, 1), true), 0)
			acquire(t, tbl, excl("/a", hd(1, 1), true), 0)
		}, hd(1, 1)},
		{"released twice", func(tbl *Table) {
			acquire(t, tbl, excl("/a", hd(1, 1), true), 0)
			release(t, tbl, "/a", hd(1, 1), 0)
		}, hd(1, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := NewTable()
			tc.setup(tbl)
			before := tbl.State()
			gs, err := tbl.Release("/a", tc.h, 0)
			if !errors.Is(err, ErrNotHeld) || gs != nil {
				t.Fatalf("got %v, %v; want ErrNotHeld", gs, err)
			}
			if !reflect.DeepEqual(before, tbl.State()) {
				t.Fatal("a failed Release changed the table")
			}
		})
	}
}

func TestLockDelayOnlyAfterLoss(t *testing.T) {
	a, b := hd(1, 1), hd(2, 1)
	tests := []struct {
		name      string
		delay     time.Duration
		free      func(*Table) []Grant
		wantGrant bool // b granted in the same call
		deadline  time.Duration
	}{
		{"release", DefaultLockDelay, func(tbl *Table) []Grant { return release(t, tbl, "/a", a, at(time.Second)) }, true, 0},
		{"handle closed", DefaultLockDelay, func(tbl *Table) []Grant { return tbl.HandleClosed(a, at(time.Second)) }, true, 0},
		{"cancel of the granted request", DefaultLockDelay, func(tbl *Table) []Grant {
			gs, err := tbl.Cancel("/a", 1, at(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			return gs
		}, true, 0},
		{"session lost", DefaultLockDelay, func(tbl *Table) []Grant { return tbl.SessionLost(1, at(time.Second)) }, false, 11 * time.Second},
		{"handle lost", 3 * time.Second, func(tbl *Table) []Grant { return tbl.HandleLost(a, at(time.Second)) }, false, 4 * time.Second},
		{"session lost, delay 0", 0, func(tbl *Table) []Grant { return tbl.SessionLost(1, at(time.Second)) }, true, 0},
		{"handle lost, delay 0", 0, func(tbl *Table) []Grant { return tbl.HandleLost(a, at(time.Second)) }, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := NewTable()
			// a queues first (w1) behind a placeholder, so Cancel can name it.
			acquire(t, tbl, excl("/a", hd(9, 9), true), 0)
			acquire(t, tbl, Request{Path: "/a", Holder: a, Mode: Exclusive, LockDelay: tc.delay, Wait: true}, 0)
			acquire(t, tbl, excl("/a", b, true), 0)
			release(t, tbl, "/a", hd(9, 9), 0)
			gs := tc.free(tbl)
			checkTable(t, tbl)
			if got := len(gs) == 1 && gs[0].Holder == b; got != tc.wantGrant {
				t.Fatalf("grants %v, want b granted: %v", gs, tc.wantGrant)
			}
			d, ok := tbl.NextDeadline()
			if ok != (tc.deadline != 0) || ok && d != at(tc.deadline) {
				t.Fatalf("NextDeadline = %v, %v; want %v", time.Duration(d), ok, tc.deadline)
			}
			if ok {
				if gs := tbl.Tick(d - 1); len(gs) != 0 {
					t.Fatalf("tick before the deadline granted %v", gs)
				}
				if gs := tbl.Tick(d); len(gs) != 1 || gs[0].Holder != b || gs[0].Generation != 3 {
					t.Fatalf("tick at the deadline granted %v", gs)
				}
				checkTable(t, tbl)
			}
		})
	}
}

func TestGenerationBumpsOnlyFreeToHeld(t *testing.T) {
	tbl := NewTable()
	steps := []struct {
		name string
		do   func() uint64
		want uint64
	}{
		{"first shared", func() uint64 { return acquire(t, tbl, shared("/a", hd(1, 1), true), 0).Generation }, 1},
		{"second shared joins", func() uint64 { return acquire(t, tbl, shared("/a", hd(2, 1), true), 0).Generation }, 1},
		{"re-acquire", func() uint64 { return acquire(t, tbl, shared("/a", hd(1, 1), true), 0).Generation }, 1},
		{"one shared leaves", func() uint64 { release(t, tbl, "/a", hd(1, 1), 0); return tbl.Generation("/a") }, 1},
		{"third shared joins", func() uint64 { return acquire(t, tbl, shared("/a", hd(3, 1), true), 0).Generation }, 1},
		{"all leave", func() uint64 {
			release(t, tbl, "/a", hd(2, 1), 0)
			release(t, tbl, "/a", hd(3, 1), 0)
			return tbl.Generation("/a")
		}, 1},
		{"free → held", func() uint64 { return acquire(t, tbl, excl("/a", hd(1, 1), true), 0).Generation }, 2},
		{"failed try", func() uint64 { tbl.Acquire(excl("/a", hd(2, 1), false), 0); return tbl.Generation("/a") }, 2},
		{"lost, then regained", func() uint64 {
			tbl.SessionLost(1, 0)
			return acquire(t, tbl, excl("/a", hd(2, 1), false), at(DefaultLockDelay)).Generation
		}, 3},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if got := s.do(); got != s.want {
				t.Fatalf("generation %d, want %d", got, s.want)
			}
		})
	}
}

func TestReacquire(t *testing.T) {
	tbl := NewTable()
	h := hd(1, 1)
	acquire(t, tbl, shared("/a", h, true), 0)
	acquire(t, tbl, excl("/a", hd(2, 1), true), 0) // queued behind
	res := acquire(t, tbl, shared("/a", h, false), 0)
	if !res.Granted || !res.Already || res.Generation != 1 {
		t.Fatalf("re-acquire: %+v", res)
	}
	if _, err := tbl.Acquire(excl("/a", h, true), 0); !errors.Is(err, fsapi.ErrBadRequest) {
		t.Fatalf("acquire in the other mode: %v", err)
	}
	if _, err := tbl.Acquire(excl("/a", hd(2, 1), true), 0); !errors.Is(err, fsapi.ErrBadRequest) {
		t.Fatalf("second request while queued: %v", err)
	}
	if l, _ := tbl.Lock("/a"); len(l.Holders) != 1 || len(l.Waiters) != 1 {
		t.Fatalf("re-acquire changed the lock: %s", fmtLock(l))
	}
}

// TestNoHerd: 200 exclusive waiters on one lock; every release grants
// exactly the next one, in order, and nobody else.
func TestNoHerd(t *testing.T) {
	const n = 200
	tbl := NewTable()
	acquire(t, tbl, excl("/hot", hd(1000, 1), true), 0)
	for i := range n {
		if res := acquire(t, tbl, excl("/hot", hd(uint64(i+1), 1), true), 0); res.Waiter != uint64(i+1) {
			t.Fatalf("waiter %d got id %d", i, res.Waiter)
		}
	}
	holder := hd(1000, 1)
	for i := range n {
		gs := release(t, tbl, "/hot", holder, at(time.Duration(i)))
		want := Grant{Path: "/hot", Holder: hd(uint64(i+1), 1), Mode: Exclusive, Generation: uint64(i + 2), Waiter: uint64(i + 1)}
		if len(gs) != 1 || gs[0] != want {
			t.Fatalf("release %d granted %v, want exactly %v", i, gs, want)
		}
		holder = gs[0].Holder
	}
	if gs := release(t, tbl, "/hot", holder, 0); len(gs) != 0 {
		t.Fatalf("last release granted %v", gs)
	}
}

// TestSharedBatch: a release grants the whole run of shared waiters at the
// head of the queue, stopping at the first exclusive one.
func TestSharedBatch(t *testing.T) {
	tests := []struct {
		name  string
		queue []Mode
		want  int // waiters granted by the release
	}{
		{"one exclusive", []Mode{Exclusive, Exclusive}, 1},
		{"all shared", []Mode{Shared, Shared, Shared}, 3},
		{"shared run then exclusive", []Mode{Shared, Shared, Exclusive, Shared}, 2},
		{"exclusive first", []Mode{Exclusive, Shared, Shared}, 1},
		{"empty", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := NewTable()
			acquire(t, tbl, excl("/a", hd(100, 1), true), 0)
			for i, m := range tc.queue {
				acquire(t, tbl, Request{Path: "/a", Holder: hd(uint64(i+1), 1), Mode: m, Wait: true}, 0)
			}
			gs := release(t, tbl, "/a", hd(100, 1), 0)
			if len(gs) != tc.want {
				t.Fatalf("granted %v, want %d", gs, tc.want)
			}
			for i, g := range gs {
				if g.Waiter != uint64(i+1) || g.Generation != 2 {
					t.Fatalf("grant %d = %v, want waiter w%d at gen 2", i, g, i+1)
				}
			}
		})
	}
}

func TestCancel(t *testing.T) {
	tbl := NewTable()
	acquire(t, tbl, shared("/a", hd(1, 1), true), 0)
	w := acquire(t, tbl, excl("/a", hd(2, 1), true), 0).Waiter
	acquire(t, tbl, shared("/a", hd(3, 1), true), 0)
	if _, err := tbl.Cancel("/b", w, 0); !errors.Is(err, ErrNoWaiter) {
		t.Fatalf("cancel on the wrong path: %v", err)
	}
	if _, err := tbl.Cancel("/a", 0, 0); !errors.Is(err, ErrNoWaiter) {
		t.Fatalf("cancel of waiter 0 (granted at once): %v", err)
	}
	gs, err := tbl.Cancel("/a", w, 0)
	if err != nil || len(gs) != 1 || gs[0].Holder != hd(3, 1) || gs[0].Generation != 1 {
		t.Fatalf("cancel of the exclusive head: %v, %v; want s3 to join the shared holders", gs, err)
	}
	if _, err := tbl.Cancel("/a", w, 0); !errors.Is(err, ErrNoWaiter) {
		t.Fatalf("second cancel: %v", err)
	}
	checkTable(t, tbl)
}

func TestSessionLostIgnoresOthers(t *testing.T) {
	tbl := NewTable()
	acquire(t, tbl, excl("/a", hd(1, 1), true), 0)
	acquire(t, tbl, excl("/b", hd(12, 1), true), 0) // session 12, not 1 or 2
	acquire(t, tbl, excl("/a", hd(2, 1), true), 0)
	before, _ := tbl.Lock("/b")
	if gs := tbl.SessionLost(12, at(time.Second)); len(gs) != 0 {
		t.Fatalf("granted %v", gs)
	}
	if gs := tbl.HandleLost(hd(1, 2), at(time.Second)); len(gs) != 0 {
		t.Fatalf("another handle's loss granted %v", gs)
	}
	if l, _ := tbl.Lock("/a"); len(l.Holders) != 1 || l.DelayUntil != 0 {
		t.Fatalf("/a changed: %s", fmtLock(l))
	}
	if after, _ := tbl.Lock("/b"); after.Held() || after.Generation != before.Generation {
		t.Fatalf("/b: %s", fmtLock(after))
	}
	checkTable(t, tbl)
}

// TestTimeGoesBack: a new leader's clock may be behind; lock-delays then
// last longer, never shorter, and nothing breaks.
func TestTimeGoesBack(t *testing.T) {
	tbl := NewTable()
	acquire(t, tbl, excl("/a", hd(1, 1), true), at(100*time.Second))
	acquire(t, tbl, excl("/a", hd(2, 1), true), at(100*time.Second))
	tbl.SessionLost(1, at(100*time.Second)) // delay until 110 s
	if gs := tbl.Tick(at(50 * time.Second)); len(gs) != 0 {
		t.Fatalf("tick in the past granted %v", gs)
	}
	if d, _ := tbl.NextDeadline(); d != at(110*time.Second) {
		t.Fatalf("deadline %v", time.Duration(d))
	}
	if gs := tbl.Tick(at(110 * time.Second)); len(gs) != 1 {
		t.Fatalf("tick at the deadline granted %v", gs)
	}
}

func TestAddDelaySaturates(t *testing.T) {
	if got := addDelay(1<<63-5, time.Second); got != 1<<63-1 {
		t.Fatalf("addDelay overflowed: %d", got)
	}
	if got := addDelay(5, 3); got != 8 {
		t.Fatalf("addDelay(5, 3) = %d", got)
	}
}

func TestRestoreRejectsCorruptState(t *testing.T) {
	h1, h2 := Hold{Holder: hd(1, 1)}, Hold{Holder: hd(2, 1)}
	w := func(id uint64, s uint64) Waiter { return Waiter{ID: id, Holder: hd(s, 1), Mode: Exclusive} }
	tests := []struct {
		name string
		st   State
	}{
		{"duplicate path", State{Locks: []Lock{{Path: "/a"}, {Path: "/a"}}}},
		{"bad path", State{Locks: []Lock{{Path: "a"}}}},
		{"free with a mode", State{Locks: []Lock{{Path: "/a", Mode: Shared}}}},
		{"two exclusive holders", State{Locks: []Lock{{Path: "/a", Mode: Exclusive, Generation: 1, Holders: []Hold{h1, h2}}}}},
		{"held at generation 0", State{Locks: []Lock{{Path: "/a", Mode: Exclusive, Holders: []Hold{h1}}}}},
		{"holders unsorted", State{Locks: []Lock{{Path: "/a", Mode: Shared, Generation: 1, Holders: []Hold{h2, h1}}}}},
		{"holder without session", State{Locks: []Lock{{Path: "/a", Mode: Shared, Generation: 1, Holders: []Hold{{}}}}}},
		{"waiter id above last", State{LastWaiter: 1, Locks: []Lock{{Path: "/a", Waiters: []Waiter{w(2, 1)}}}}},
		{"waiter ids out of order", State{LastWaiter: 3, Locks: []Lock{{Path: "/a", Waiters: []Waiter{w(2, 1), w(1, 2)}}}}},
		{"waiter id on two locks", State{LastWaiter: 3, Locks: []Lock{{Path: "/a", Waiters: []Waiter{w(1, 1)}}, {Path: "/b", Waiters: []Waiter{w(1, 2)}}}}},
		{"holder also waits", State{LastWaiter: 3, Locks: []Lock{{Path: "/a", Mode: Shared, Generation: 1, Holders: []Hold{h1}, Waiters: []Waiter{w(1, 1)}}}}},
		{"waits twice", State{LastWaiter: 3, Locks: []Lock{{Path: "/a", Waiters: []Waiter{w(1, 1), w(2, 1)}}}}},
		{"bad waiter mode", State{LastWaiter: 3, Locks: []Lock{{Path: "/a", Waiters: []Waiter{{ID: 1, Holder: hd(1, 1)}}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Restore(tc.st); err == nil {
				t.Fatalf("Restore accepted %+v", tc.st)
			}
		})
	}
	ok := State{LastWaiter: 3, Locks: []Lock{{Path: "/a", Mode: Shared, Generation: 4, Holders: []Hold{h1, h2}, Waiters: []Waiter{w(3, 3)}}}}
	tbl, err := Restore(ok)
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, tbl)
	if gs := tbl.SessionLost(1, 0); len(gs) != 0 {
		t.Fatalf("restored table: %v", gs)
	}
	if gs := release(t, tbl, "/a", hd(2, 1), 0); len(gs) != 1 || gs[0].Generation != 5 || gs[0].Waiter != 3 {
		t.Fatalf("restored table's indexes are wrong: %v", gs)
	}
}

// TestStateIsCanonical: the same history gives identical States, whatever
// the map order, and State is a deep copy.
func TestStateIsCanonical(t *testing.T) {
	run := func() *Table {
		tbl := NewTable()
		for i, p := range []string{"/z", "/a", "/m", "/b", "/y"} {
			acquire(t, tbl, Request{Path: p, Holder: hd(1, uint64(i)), Mode: Exclusive}, 0) // no lock-delay
			acquire(t, tbl, shared(p, hd(2, uint64(i)), true), 0)
			acquire(t, tbl, shared(p, hd(3, uint64(i)), true), 0)
		}
		return tbl
	}
	t1, t2 := run(), run()
	g1, g2 := t1.SessionLost(1, 0), t2.SessionLost(1, 0)
	if !reflect.DeepEqual(g1, g2) || !reflect.DeepEqual(t1.State(), t2.State()) {
		t.Fatal("same history, different results")
	}
	if len(g1) != 10 {
		t.Fatalf("granted %v, want both shared waiters of 5 locks", g1)
	}
	for i := 1; i < len(g1); i++ {
		if g1[i-1].Path > g1[i].Path {
			t.Fatalf("grants not in path order: %v", g1)
		}
	}
	st := t1.State()
	st.Locks[0].Holders[0].Holder = hd(99, 99)
	if reflect.DeepEqual(st, t1.State()) {
		t.Fatal("State shares memory with the table")
	}
	roundTrip(t, t1)
}

func TestDelete(t *testing.T) {
	tbl := NewTable()
	acquire(t, tbl, excl("/a", hd(1, 1), true), 0)
	acquire(t, tbl, excl("/a", hd(2, 1), true), 0)
	tbl.SessionLost(1, 0)
	if _, ok := tbl.NextDeadline(); !ok {
		t.Fatal("no deadline")
	}
	l, ok := tbl.Delete("/a")
	if !ok || len(l.Waiters) != 1 || l.Waiters[0].Holder != hd(2, 1) {
		t.Fatalf("Delete = %s, %v", fmtLock(l), ok)
	}
	if got, want := l.String(), "/a free gen=1 delay-until=1970-01-01T00:00:10Z holders=[] waiters=[w1:s2/h1:exclusive]"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	checkTable(t, tbl)
	if _, ok := tbl.NextDeadline(); ok {
		t.Fatal("deadline of a deleted lock")
	}
	if gs := tbl.SessionLost(2, 0); len(gs) != 0 {
		t.Fatalf("deleted waiter granted: %v", gs)
	}
	if res := acquire(t, tbl, excl("/a", hd(3, 1), false), 0); res.Generation != 1 {
		t.Fatalf("a new node's lock starts at generation 1: %+v", res)
	}
}
