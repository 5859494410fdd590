package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/haspcell/hasp/fsapi"
)

func multi(sess uint64, ops ...MultiOp) *Multi {
	return &Multi{Meta: WriteMeta{Session: sess}, Ops: ops}
}

func mCreate(path, data string) MultiOp {
	return MultiOp{Kind: MultiCreate, Path: path, Data: []byte(data)}
}
func mDir(path string) MultiOp { return MultiOp{Kind: MultiCreate, Path: path, Directory: true} }
func mSet(path, data string, gen uint64) MultiOp {
	return MultiOp{Kind: MultiSet, Path: path, Data: []byte(data), Generation: gen}
}
func mDel(path string, gen uint64) MultiOp {
	return MultiOp{Kind: MultiDelete, Path: path, Generation: gen}
}
func mCheck(path string, gen uint64) MultiOp {
	return MultiOp{Kind: MultiCheck, Path: path, Generation: gen}
}

// TestMultiApplies: every op sees the ops before it, the results and the
// events are per op, in order, at the entry's revision.
func TestMultiApplies(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkfile(s1, "/old", "x"))
	C, M, D := fsapi.ChangeCreated, fsapi.ChangeModified, fsapi.ChangeDeleted
	seqDir := mCreate("/d/job-", "j")
	seqDir.Sequential = true
	r := h.must(multi(s1, mDir("/d"), mCreate("/d/f", "1"), mSet("/d/f", "2", 1), mCheck("/d/f", 2),
		mCheck("/old", 0), mDel("/old", 1), seqDir))
	wantEvs := []ev{{Kind: C, Path: "/d"}, {Kind: C, Path: "/d/f"}, {Kind: M, Path: "/d/f"}, {Kind: D, Path: "/old"},
		{Kind: C, Path: "/d/job-0000000000"}}
	for i := range wantEvs {
		wantEvs[i].Rev, wantEvs[i].Idx = h.index, uint32(i)
	}
	if got := evs(h.eventsOf()); !reflect.DeepEqual(got, wantEvs) {
		t.Fatalf("events\n%v\nwant\n%v", got, wantEvs)
	}
	var paths []string
	for _, mr := range r.Multi {
		paths = append(paths, mr.Path)
	}
	want := []string{"/d", "/d/f", "/d/f", "/d/f", "/old", "/old", "/d/job-0000000000"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("result paths %v, want %v", paths, want)
	}
	if st := r.Multi[2].Stat; st.ContentGeneration != 2 || st != h.node("/d/f").Stat || st.ModifiedRevision != h.index {
		t.Fatalf("set result %+v, node %+v", st, h.node("/d/f").Stat)
	}
	if string(h.node("/d/f").Data) != "2" || h.node("/d").Stat.Children != 2 || h.node("/d").NextSequence != 1 {
		t.Fatal("the namespace does not show every op")
	}
	h.absent("/old")
	checkInvariants(t, h.f)
}

// TestMultiAllOrNothing: whichever op fails, the namespace, the sessions'
// ephemeral sets, the lock table and the event history are as before, and
// the error names the op.
func TestMultiAllOrNothing(t *testing.T) {
	tests := []struct {
		name string
		ops  []MultiOp
		op   int
		kind ErrKind
	}{
		{"create exists", []MultiOp{mCreate("/n", ""), mCreate("/f", "")}, 1, ErrKindExist},
		{"set generation", []MultiOp{mSet("/f", "y", 0), mSet("/f", "z", 1)}, 1, ErrKindGenerationMismatch},
		{"check generation", []MultiOp{mDel("/f", 0), mCreate("/f", ""), mCheck("/f", 2)}, 2, ErrKindGenerationMismatch},
		{"check absent", []MultiOp{mCreate("/n", ""), mCheck("/nope", 0)}, 1, ErrKindNotExist},
		{"delete generation", []MultiOp{mCreate("/n", ""), mDel("/f", 5)}, 1, ErrKindGenerationMismatch},
		{"delete not empty", []MultiOp{mDel("/d", 0)}, 0, ErrKindNotEmpty},
		{"delete locked by other", []MultiOp{mDel("/e/x", 0), mDel("/locked", 0)}, 1, ErrKindHeld},
		{"after ephemeral create", []MultiOp{eph(mCreate("/e/new", "")), mSet("/d", "x", 0)}, 1, ErrKindIsDir},
		{"after deleting a locked node", []MultiOp{mDel("/mine", 0), mCreate("/mine", ""), mCheck("/x", 0)}, 2, ErrKindNotExist},
		{"after sequential create", []MultiOp{seqOp(mCreate("/d/s-", "")), mCreate("/missing/x", "")}, 1, ErrKindNotExist},
		{"kind", []MultiOp{mCreate("/n", ""), {Kind: 9, Path: "/f"}}, 1, ErrKindBadRequest},
		{"flag on set", []MultiOp{{Kind: MultiSet, Path: "/f", Ephemeral: true}}, 0, ErrKindBadRequest},
		{"bad name", []MultiOp{mCreate("/n", ""), mCheck("/a//b", 0)}, 1, ErrKindBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := multiFixture(t)
			before := stateBytes(t, h)
			r := h.apply(multi(s1, tt.ops...))
			if r.ErrKind != tt.kind || r.FailedOp != tt.op+1 || r.Multi != nil {
				t.Fatalf("result %+v, want %v at op %d", r, tt.kind, tt.op)
			}
			var me *fsapi.MultiOpError
			if err := r.Err(); !errors.As(err, &me) || me.Op != tt.op {
				t.Fatalf("Err() = %v", err)
			}
			if after := stateBytes(t, h); !bytes.Equal(before, after) {
				t.Fatal("a failed multi-op changed the state")
			}
			if evs := h.eventsOf(); len(evs) != 0 {
				t.Fatalf("a failed multi-op recorded events %v", evs)
			}
			checkInvariants(t, h.f)
		})
	}
}

func eph(op MultiOp) MultiOp   { op.Ephemeral = true; return op }
func seqOp(op MultiOp) MultiOp { op.Sequential = true; return op }

// multiFixture: /f (a file at generation 1), /d holding /d/c, session 1's
// ephemeral directory /e holding /e/x, /locked (locked by session 2) and
// /mine (locked by session 1).
func multiFixture(t *testing.T) *tester {
	h := newTester(t, Config{ContentLimit: 16})
	h.must(mkfile(0, "/f", "v"))
	h.must(mkdir(0, "/d"))
	h.must(mkfile(0, "/d/c", ""))
	h.must(ephDir(s1, "/e"))
	h.must(ephFile(s1, "/e/x"))
	h.must(mkfile(0, "/locked", ""))
	h.must(acq(s2, "/locked", 1, excl, false))
	h.must(mkfile(0, "/mine", ""))
	h.must(acq(s1, "/mine", 1, excl, false))
	h.must(acq(s2, "/mine", 2, excl, true))
	return h
}

// stateBytes is the snapshot without its header (which holds the index).
func stateBytes(t *testing.T, h *tester) []byte {
	t.Helper()
	b := snapshotBytes(t, h.f)
	hdr, err := Encode(0, &snapHeader{Version: snapshotVersion, Index: h.f.AppliedIndex(), ContentLimit: h.f.cfg.ContentLimit})
	if err != nil {
		t.Fatal(err)
	}
	hdr = hdr[1:] // Encode prepends a type byte
	if !bytes.HasPrefix(b, hdr) {
		t.Fatal("snapshot does not start with the header")
	}
	return b[len(hdr):]
}

// TestMultiDeleteLockedAndRecreate: a Multi may delete a node its session
// locked and create it again; the old lock goes (its waiter is dropped)
// and the new node is unlocked.
func TestMultiDeleteLockedAndRecreate(t *testing.T) {
	h := multiFixture(t)
	var dropped []uint64
	h.f.SetLockNotify(func(_ []GrantInfo, d []uint64) { dropped = append(dropped, d...) })
	h.must(multi(s1, mDel("/mine", 0), mCreate("/mine", "again"), mDel("/e/x", 0)))
	if _, ok := h.f.LockState("/mine"); ok || h.lockGen("/mine") != 0 || len(dropped) != 1 {
		t.Fatalf("lock after delete and create: dropped %v", dropped)
	}
	h.absent("/e/x", "/e") // the ephemeral directory went with its last child
	if info, _ := h.f.Session(s1); info.Ephemerals != 0 {
		t.Fatalf("session 1 still owns %d ephemerals", info.Ephemerals)
	}
	checkInvariants(t, h.f)
}

// TestMultiLimits: the whole Multi is checked first.
func TestMultiLimits(t *testing.T) {
	h := newTester(t, Config{ContentLimit: 8})
	many := make([]MultiOp, fsapi.MaxMultiOps+1)
	for i := range many {
		many[i] = mCheck("/", 0)
	}
	for _, c := range []struct {
		m    *Multi
		kind ErrKind
	}{
		{multi(s1), ErrKindBadRequest},
		{multi(s1, many...), ErrKindBadRequest},
		{multi(s1, mCreate("/a", "12345"), mCreate("/b", "6789")), ErrKindTooLarge},
	} {
		r := h.apply(c.m)
		if r.ErrKind != c.kind || r.FailedOp != 0 || !strings.Contains(r.ErrMsg, "multi-op") {
			t.Fatalf("%d ops: %+v", len(c.m.Ops), r)
		}
	}
	h.must(multi(s1, many[:fsapi.MaxMultiOps]...))
	h.must(multi(s1, mCreate("/a", "1234"), mCreate("/b", "5678")))
}

// TestMultiDedup: a retried Multi gets its first answer, whether that was
// success or failure, and is not applied again.
func TestMultiDedup(t *testing.T) {
	h := newTester(t, Config{})
	m := multi(s1, mCreate("/a", "1"), mCreate("/b", "2"))
	m.Meta = seq(m.Meta, 1, 1)
	first, again := h.must(m), h.must(m)
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("retry answered %+v, first %+v", again, first)
	}
	bad := multi(s1, mSet("/a", "x", 1), mSet("/b", "y", 7))
	bad.Meta = seq(bad.Meta, 2, 2)
	r1 := h.apply(bad)
	h.must(set(s2, "/b", "z")) // /b is now at generation 2: still not 7
	r2 := h.apply(bad)
	if r1.FailedOp != 2 || !reflect.DeepEqual(r1, r2) || string(h.node("/a").Data) != "1" {
		t.Fatalf("failed multi retried: %+v then %+v", r1, r2)
	}
}
