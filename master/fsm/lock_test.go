package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/haspcell/hasp/locks"
)

const (
	excl   = uint8(locks.Exclusive)
	shared = uint8(locks.Shared)
	ms     = int64(time.Millisecond)
)

// Lock command constructors; now is the leader's clock (Meta.Time).

func acq(sess uint64, path string, handle uint64, mode uint8, wait bool) *Acquire {
	return &Acquire{Meta: WriteMeta{Session: sess}, Path: path, Handle: handle, Mode: mode, Wait: wait}
}

func acqAt(now int64, delayMillis int64, a *Acquire) *Acquire {
	a.Meta.Time, a.LockDelayMillis = now, delayMillis
	return a
}

func rel(sess uint64, path string, handle uint64) *Release {
	return &Release{Meta: WriteMeta{Session: sess}, Path: path, Handle: handle}
}

func cancelW(sess uint64, path string, waiter uint64) *CancelWait {
	return &CancelWait{Meta: WriteMeta{Session: sess}, Path: path, Waiter: waiter}
}

func grant(path string, sess, handle uint64, mode uint8, gen, waiter uint64) GrantInfo {
	return GrantInfo{Path: path, Session: sess, Handle: handle, Mode: mode, Generation: gen, Waiter: waiter}
}

func wantGrants(t *testing.T, r *Result, want ...GrantInfo) {
	t.Helper()
	if len(want) == 0 {
		want = nil
	}
	if !reflect.DeepEqual(r.Grants, want) {
		t.Fatalf("grants %+v, want %+v", r.Grants, want)
	}
}

func (h *tester) lockGen(path string) uint64 {
	h.t.Helper()
	return h.node(path).Stat.LockGeneration
}

func TestLockAcquire(t *testing.T) {
	const s3 uint64 = 3
	const ok = ErrKindOK
	newS3 := step{&CreateSession{Time: 300, LeaseMillis: 12000}, ok}
	runCases(t, Config{}, []nsCase{
		{name: "try free lock", steps: []step{{mkfile(s1, "/f", ""), ok}, {acq(s1, "/f", 1, excl, false), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				r := rs[1]
				if !r.Granted || r.Generation != 1 || r.Waiter != 0 || r.Stat.LockGeneration != 1 || h.lockGen("/f") != 1 {
					t.Fatalf("result %+v, node gen %d", r, h.lockGen("/f"))
				}
				if r.Stat.ModifiedRevision != rs[0].Stat.ModifiedRevision {
					t.Fatal("a lock changed ModifiedRevision")
				}
				l, held := h.f.LockState("/f")
				if !held || l.Mode != locks.Exclusive || len(l.Holders) != 1 || l.Holders[0].Holder != (locks.Holder{Session: s1, Handle: 1}) {
					t.Fatalf("lock %v", l)
				}
			}},
		{name: "directory is a lock", steps: []step{{mkdir(s1, "/d"), ok}, {acq(s2, "/d", 1, shared, false), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if !rs[1].Granted || h.lockGen("/d") != 1 {
					t.Fatalf("%+v", rs[1])
				}
			}},
		{name: "root is a lock", steps: []step{{acq(s2, "/", 1, excl, false), ok}}},
		{name: "reacquire is already held", steps: []step{
			{mkfile(s1, "/f", ""), ok}, {acq(s1, "/f", 1, excl, false), ok}, {acq(s1, "/f", 1, excl, true), ok},
			{acq(s1, "/f", 1, shared, true), ErrKindBadRequest},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			if !rs[2].Granted || rs[2].Generation != 1 || h.lockGen("/f") != 1 {
				t.Fatalf("%+v", rs[2])
			}
		}},
		{name: "try held lock", steps: []step{
			{mkfile(s1, "/f", ""), ok}, {acq(s1, "/f", 1, excl, false), ok},
			{acq(s2, "/f", 1, excl, false), ErrKindHeld}, {acq(s1, "/f", 2, shared, false), ErrKindHeld},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			if err := rs[2].Err(); !errors.Is(err, locks.ErrHeld) {
				t.Fatalf("Err() = %v, want locks.ErrHeld", err)
			}
		}},
		{name: "shared holders", steps: []step{
			{mkfile(s1, "/f", ""), ok}, {acq(s1, "/f", 1, shared, false), ok}, {acq(s2, "/f", 1, shared, false), ok},
			{acq(s2, "/f", 2, excl, false), ErrKindHeld},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			if rs[2].Generation != 1 || h.lockGen("/f") != 1 {
				t.Fatal("joining a shared lock bumped the generation")
			}
		}},
		{name: "missing node", steps: []step{{acq(s1, "/nope", 1, excl, true), ErrKindNotExist}}},
		{name: "bad path", steps: []step{{acq(s1, "/a/", 1, excl, true), ErrKindBadName}}},
		{name: "stale instance", steps: []step{
			{mkfile(s1, "/f", ""), ok}, {&Acquire{Meta: WriteMeta{Session: s1}, Path: "/f", Instance: 99, Handle: 1, Mode: excl}, ErrKindHandleInvalid},
		}},
		{name: "matching instance", steps: []step{
			{mkfile(s1, "/f", ""), ok}, {&Acquire{Meta: WriteMeta{Session: s1}, Path: "/f", Instance: 3, Handle: 1, Mode: excl}, ok},
		}},
		{name: "bad mode", steps: []step{{mkfile(s1, "/f", ""), ok}, {acq(s1, "/f", 1, 3, true), ErrKindBadRequest}}},
		{name: "bad lock-delay", steps: []step{
			{mkfile(s1, "/f", ""), ok},
			{acqAt(0, -1, acq(s1, "/f", 1, excl, true)), ErrKindBadRequest},
			{acqAt(0, 60001, acq(s1, "/f", 1, excl, true)), ErrKindBadRequest},
			{acqAt(0, 1<<62, acq(s1, "/f", 1, excl, true)), ErrKindBadRequest},
			{acqAt(0, 60000, acq(s1, "/f", 1, excl, true)), ok},
		}},
		{name: "no session", steps: []step{{mkfile(s1, "/f", ""), ok}, {acq(0, "/f", 1, excl, true), ErrKindBadRequest}}},
		{name: "unknown session", steps: []step{{mkfile(s1, "/f", ""), ok}, {acq(9, "/f", 1, excl, true), ErrKindSessionExpired}}},
		{name: "wait then handoff FIFO", steps: []step{
			newS3, {mkfile(s1, "/f", ""), ok},
			{acq(s1, "/f", 1, excl, true), ok}, // granted at once
			{acq(s2, "/f", 1, excl, true), ok}, // w1
			{acq(s3, "/f", 1, excl, true), ok}, // w2
			{acq(s2, "/f", 1, excl, true), ErrKindBadRequest},
			{rel(s2, "/f", 1), ErrKindNotHeld},
			{rel(s1, "/f", 1), ok},
			{rel(s1, "/f", 1), ErrKindNotHeld},
			{rel(s2, "/f", 1), ok},
			{rel(s3, "/f", 1), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			if rs[3].Granted || rs[3].Waiter != 1 || rs[4].Waiter != 2 || rs[3].Stat.LockGeneration != 1 {
				t.Fatalf("waits: %+v %+v", rs[3], rs[4])
			}
			if err := rs[6].Err(); !errors.Is(err, locks.ErrNotHeld) {
				t.Fatalf("Err() = %v", err)
			}
			wantGrants(t, rs[7], grant("/f", s2, 1, excl, 2, 1))
			if rs[7].Stat.LockGeneration != 2 {
				t.Fatalf("release result stat %+v", rs[7].Stat)
			}
			wantGrants(t, rs[9], grant("/f", s3, 1, excl, 3, 2))
			wantGrants(t, rs[10])
			if h.lockGen("/f") != 3 {
				t.Fatalf("lock generation %d, want 3", h.lockGen("/f"))
			}
			if l, _ := h.f.LockState("/f"); l.Held() || l.Generation != 3 {
				t.Fatalf("lock %v", l)
			}
		}},
		{name: "shared waiters granted together, exclusive after", steps: []step{
			newS3, {mkfile(s1, "/f", ""), ok},
			{acq(s1, "/f", 1, excl, true), ok},
			{acq(s2, "/f", 1, shared, true), ok},
			{acq(s3, "/f", 1, shared, true), ok},
			{acq(s1, "/f", 2, excl, true), ok},
			{acq(s2, "/f", 2, shared, true), ok},
			{rel(s1, "/f", 1), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			wantGrants(t, rs[7], grant("/f", s2, 1, shared, 2, 1), grant("/f", s3, 1, shared, 2, 2))
			if l, _ := h.f.LockState("/f"); len(l.Waiters) != 2 || l.Waiters[0].ID != 3 {
				t.Fatalf("lock %v: the exclusive waiter must stay ahead of the later shared one", l)
			}
		}},
		{name: "cancel wait", steps: []step{
			newS3, {mkfile(s1, "/f", ""), ok},
			{acq(s1, "/f", 1, excl, true), ok},
			{acq(s2, "/f", 1, excl, true), ok},      // w1
			{acq(s3, "/f", 1, excl, true), ok},      // w2
			{cancelW(s3, "/f", 1), ErrKindNoWaiter}, // not its waiter
			{cancelW(s2, "/f", 1), ok},
			{cancelW(s2, "/f", 1), ErrKindNoWaiter},
			{rel(s1, "/f", 1), ok},
			{cancelW(s3, "/f", 2), ok}, // granted meanwhile: released
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			if err := rs[5].Err(); !errors.Is(err, locks.ErrNoWaiter) {
				t.Fatalf("Err() = %v", err)
			}
			wantGrants(t, rs[8], grant("/f", s3, 1, excl, 2, 2))
			if l, _ := h.f.LockState("/f"); l.Held() || len(l.Waiters) != 0 {
				t.Fatalf("lock %v", l)
			}
		}},
		{name: "cancel of head grants next", steps: []step{
			newS3, {mkfile(s1, "/f", ""), ok},
			{acq(s1, "/f", 1, shared, true), ok},
			{acq(s2, "/f", 1, excl, true), ok},   // w1
			{acq(s3, "/f", 1, shared, true), ok}, // w2, behind w1
			{cancelW(s2, "/f", 1), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			wantGrants(t, rs[5], grant("/f", s3, 1, shared, 1, 2))
		}},
	})
}

func TestLockSessionExpiryLockDelay(t *testing.T) {
	h := newTester(t, Config{})
	s3 := h.must(&CreateSession{Time: 300, LeaseMillis: 12000}).Session
	h.must(mkfile(0, "/f", ""))
	h.must(mkfile(0, "/g", ""))
	const t0 = int64(1_000_000_000)
	h.must(acqAt(t0, 10, acq(s1, "/f", 1, excl, true)))
	h.must(acqAt(t0, 0, acq(s1, "/g", 1, excl, true)))
	w := h.must(acqAt(t0, 0, acq(s2, "/f", 1, excl, true))).Waiter
	h.must(acqAt(t0, 0, acq(s3, "/g", 1, excl, true)))
	if _, ok := h.f.NextLockDeadline(); ok {
		t.Fatal("deadline while every lock is held")
	}

	// s1 expires: /g (no lock-delay) goes to s3 at once, /f waits out 10 ms.
	r := h.must(&CloseSession{Meta: WriteMeta{Session: s1, Time: t0 + ms}, Expired: true})
	wantGrants(t, r, grant("/g", s3, 1, excl, 2, 2))
	if h.lockGen("/g") != 2 || h.lockGen("/f") != 1 {
		t.Fatal("lock generations")
	}
	at, ok := h.f.NextLockDeadline()
	if !ok || at != t0+11*ms {
		t.Fatalf("NextLockDeadline = %d, %v; want %d", at, ok, t0+11*ms)
	}
	// Nobody else may take it meanwhile.
	r = h.apply(acqAt(t0+2*ms, 0, acq(s3, "/f", 2, excl, false)))
	if r.ErrKind != ErrKindLockDelay || !errors.Is(r.Err(), locks.ErrLockDelay) {
		t.Fatalf("try during lock-delay: %+v", r)
	}
	wantGrants(t, h.must(&LockTick{Time: t0 + 5*ms}))
	r = h.must(&LockTick{Time: at})
	wantGrants(t, r, grant("/f", s2, 1, excl, 2, w))
	if h.lockGen("/f") != 2 {
		t.Fatal("tick did not set the lock generation")
	}
	if _, ok := h.f.NextLockDeadline(); ok {
		t.Fatal("deadline after the tick")
	}
	checkInvariants(t, h.f)
}

func TestLockClientCloseReleases(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkfile(0, "/f", ""))
	h.must(ephFile(s1, "/e"))
	h.must(acq(s1, "/f", 1, excl, true))
	h.must(acq(s1, "/e", 1, excl, true))
	h.must(acq(s2, "/f", 1, excl, true))
	h.must(acq(s2, "/e", 1, excl, true))
	r := h.must(&CloseSession{Meta: WriteMeta{Session: s1, Seq: 1}})
	// The grant on the ephemeral /e is left out: /e went with the session.
	wantGrants(t, r, grant("/f", s2, 1, excl, 2, 1))
	h.absent("/e")
	if _, ok := h.f.LockState("/e"); ok {
		t.Fatal("lock of a deleted node survives")
	}
	checkInvariants(t, h.f)
}

func TestLockDedup(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkfile(0, "/f", ""))
	h.must(acq(s1, "/f", 1, excl, true))
	a := acq(s2, "/f", 1, excl, true)
	a.Meta.Seq = 1
	first := h.must(a)
	again := h.must(a) // not "already waiting": the stored Result
	if first.Waiter != 1 || !reflect.DeepEqual(first, again) {
		t.Fatalf("retry: %+v, first %+v", again, first)
	}
	r := rel(s1, "/f", 1)
	r.Meta.Seq = 1
	first = h.must(r)
	again = h.must(r) // not ErrKindNotHeld
	if !reflect.DeepEqual(first, again) || len(first.Grants) != 1 {
		t.Fatalf("release retry: %+v, first %+v", again, first)
	}
	if h.lockGen("/f") != 2 {
		t.Fatal("a retry was applied twice")
	}
}

func TestLockDeleteNode(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkfile(0, "/f", ""))
	h.must(acq(s1, "/f", 1, excl, true))
	h.must(acq(s2, "/f", 1, excl, true))
	seq := locks.Sequencer{Path: "/f", Instance: h.node("/f").Stat.Instance, Mode: locks.Exclusive, Generation: 1}
	if err := h.f.CheckSequencer(seq); err != nil {
		t.Fatal(err)
	}
	var gotDropped []uint64
	h.f.SetLockNotify(func(_ []GrantInfo, dropped []uint64) { gotDropped = append(gotDropped, dropped...) })
	// Only the holder may delete a locked node: anyone else would end its
	// holding without a lock-delay.
	h.run([]step{{del(s2, "/f"), ErrKindHeld}})
	h.must(del(s1, "/f"))
	if !reflect.DeepEqual(gotDropped, []uint64{1}) {
		t.Fatalf("dropped waiters notified: %v, want [1]", gotDropped)
	}
	if err := h.f.CheckSequencer(seq); !errors.Is(err, locks.ErrStaleSequencer) {
		t.Fatalf("CheckSequencer after delete = %v", err)
	}
	if _, ok := h.f.LockState("/f"); ok {
		t.Fatal("the lock survived its node")
	}
	h.must(mkfile(0, "/f", ""))
	if h.lockGen("/f") != 0 {
		t.Fatal("a new node inherited the lock generation")
	}
	r := h.must(acq(s2, "/f", 1, excl, false))
	if !r.Granted || r.Generation != 1 {
		t.Fatalf("%+v", r)
	}
	h.run([]step{{rel(s1, "/f", 1), ErrKindNotHeld}, {cancelW(s2, "/f", 2), ErrKindNoWaiter}})
	if err := h.f.CheckSequencer(seq); !errors.Is(err, locks.ErrStaleSequencer) {
		t.Fatalf("CheckSequencer of the old instance = %v", err)
	}
}

func TestLockSnapshotRoundTrip(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkfile(0, "/f", ""))
	h.must(mkdir(0, "/d"))
	h.must(acqAt(5, 10, acq(s1, "/f", 1, excl, true)))
	h.must(acqAt(5, 0, acq(s2, "/f", 1, shared, true)))
	h.must(acqAt(5, 0, acq(s2, "/d", 7, shared, true)))
	h.must(&CloseSession{Meta: WriteMeta{Session: s1, Time: 6}, Expired: true}) // lock-delay with a waiter
	data := snapshotBytes(t, h.f)
	if !bytes.Equal(data, snapshotBytes(t, h.f)) {
		t.Fatal("snapshot not deterministic")
	}
	c := restored(t, data, h.f.Config())
	if !bytes.Equal(data, snapshotBytes(t, c.f)) {
		t.Fatal("snapshot → restore → snapshot changed the bytes")
	}
	if !reflect.DeepEqual(h.f.locks.State(), c.f.locks.State()) {
		t.Fatal("restored lock table differs")
	}
	at, ok := c.f.NextLockDeadline()
	if !ok || at != 6+10*ms {
		t.Fatalf("restored deadline %d %v", at, ok)
	}
	// Both behave the same from here.
	for _, cmd := range []any{&LockTick{Time: at}, rel(s2, "/f", 1), acq(s2, "/d", 8, excl, false)} {
		a, b := h.apply(cmd), c.apply(cmd)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%T: %+v vs %+v", cmd, a, b)
		}
	}
	if !bytes.Equal(snapshotBytes(t, h.f), snapshotBytes(t, c.f)) {
		t.Fatal("diverged after restore")
	}
}

// A snapshot without a locks record (written before locks existed)
// restores as "no locks", and a state without locks snapshots without one.
func TestLockSnapshotOldFormat(t *testing.T) {
	g := newGoodSnap()
	data := encodeSnap(t, &g.hdr, g.records(), nil)
	h := restored(t, data, Config{ContentLimit: 4})
	if st := h.f.locks.State(); st.LastWaiter != 0 || len(st.Locks) != 0 {
		t.Fatalf("locks %+v", st)
	}
	if !bytes.Equal(snapshotBytes(t, h.f), data) {
		t.Fatal("a state without locks must snapshot in the old format")
	}
	h.index = h.f.AppliedIndex()
	r := h.must(acq(5, "/d/f", 1, excl, false))
	if !r.Granted || h.lockGen("/d/f") != 1 {
		t.Fatalf("%+v", r)
	}
	// Results without lock fields encode as before.
	var b []byte
	if err := codec.NewEncoderBytes(&b, handle).Encode(&Result{Created: true}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("Grant")) || bytes.Contains(b, []byte("Waiter")) {
		t.Fatalf("empty lock fields are encoded: %q", b)
	}
}

func TestLockRestoreValidation(t *testing.T) {
	lockRec := func(g *goodSnap, st locks.State) []rec {
		r := g.records()
		return append(r[:4:4], rec{recLocks, &st}, r[4])
	}
	held := func(path string, sess uint64, gen uint64) locks.State {
		return locks.State{Locks: []locks.Lock{{Path: path, Mode: locks.Exclusive, Generation: gen,
			Holders: []locks.Hold{{Holder: locks.Holder{Session: sess, Handle: 1}}}}}}
	}
	cases := []corruption{
		{"lock on missing node", func(g *goodSnap) []rec { return lockRec(g, held("/x", 5, 1)) }, "no such node"},
		{"generation mismatch", func(g *goodSnap) []rec { return lockRec(g, held("/d/f", 5, 1)) }, "lock generation"},
		{"holder without session", func(g *goodSnap) []rec {
			g.f.Node.Stat.LockGeneration = 1
			return lockRec(g, held("/d/f", 6, 1))
		}, "no session"},
		{"generation without lock", func(g *goodSnap) []rec { g.f.Node.Stat.LockGeneration = 1; return nil }, "lock generation"},
		{"invalid table", func(g *goodSnap) []rec {
			g.f.Node.Stat.LockGeneration = 1
			st := held("/d/f", 5, 1)
			st.Locks[0].Mode = 0
			return lockRec(g, st)
		}, "restore"},
		{"two lock records", func(g *goodSnap) []rec {
			r := lockRec(g, locks.State{LastWaiter: 1})
			return append(r[:5:5], r[4], r[5])
		}, "second locks"},
		{"session after locks", func(g *goodSnap) []rec {
			r := g.records()
			return []rec{r[0], r[1], r[2], {recLocks, &locks.State{LastWaiter: 1}}, r[3], r[4]}
		}, "after locks"},
	}
	expectCorruptionsFail(t, cases)
	t.Run("good", func(t *testing.T) {
		g := newGoodSnap()
		g.f.Node.Stat.LockGeneration = 1
		data := encodeSnap(t, &g.hdr, lockRec(g, held("/d/f", 5, 1)), nil)
		h := restored(t, data, Config{ContentLimit: 4})
		if l, ok := h.f.LockState("/d/f"); !ok || !l.Held() || !bytes.Equal(snapshotBytes(t, h.f), data) {
			t.Fatal("the valid hand-made snapshot with a lock did not round-trip")
		}
	})
}

// A client that closes its session cleanly releases its locks like
// Release: no lock-delay, unlike expiry.
func TestLockCleanCloseNoLockDelay(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkfile(0, "/f", ""))
	const t0 = int64(1_000_000_000)
	h.must(acqAt(t0, 10_000, acq(s1, "/f", 1, excl, true)))
	w := h.must(acqAt(t0, 0, acq(s2, "/f", 1, excl, true))).Waiter
	r := h.must(&CloseSession{Meta: WriteMeta{Session: s1, Time: t0 + ms}})
	wantGrants(t, r, grant("/f", s2, 1, excl, 2, w))
	if _, ok := h.f.NextLockDeadline(); ok {
		t.Fatal("a clean close started a lock-delay")
	}
	checkInvariants(t, h.f)
}

// A write carrying a sequencer applies only while it is current, and a
// grant is notified once even when its command is retried.
func TestLockSequencerOnWritesAndNotifyOnce(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkfile(0, "/f", ""))
	h.must(mkfile(0, "/data", ""))
	var notified []GrantInfo
	h.f.SetLockNotify(func(g []GrantInfo, _ []uint64) { notified = append(notified, g...) })
	h.must(acq(s1, "/f", 1, excl, true))
	w := h.must(acq(s2, "/f", 1, excl, true)).Waiter
	old := locks.Sequencer{Path: "/f", Instance: h.node("/f").Stat.Instance, Mode: locks.Exclusive, Generation: 1}.Encode()
	ok := set(s1, "/data", "one")
	ok.Sequencer = old
	h.must(ok)
	r := rel(s1, "/f", 1)
	r.Meta.Seq = 1
	h.must(r)
	h.must(r) // retried: answered from the reply table
	if want := []GrantInfo{grant("/f", s2, 1, excl, 2, w)}; !reflect.DeepEqual(notified, want) {
		t.Fatalf("notified %+v, want %+v", notified, want)
	}
	stale := set(s1, "/data", "two")
	stale.Sequencer = old
	d := del(s1, "/data")
	d.Sequencer = old
	bad := set(s1, "/data", "three")
	bad.Sequencer = []byte("garbage")
	h.run([]step{{stale, ErrKindStaleSequencer}, {d, ErrKindStaleSequencer}, {bad, ErrKindBadRequest}})
	if string(h.node("/data").Data) != "one" {
		t.Fatal("a fenced write applied")
	}
}
