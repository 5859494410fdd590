package fsm

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func closeS(sess, seqNo uint64) *CloseSession {
	return &CloseSession{Meta: WriteMeta{Session: sess, Seq: seqNo}}
}

func expire(sess uint64) *CloseSession {
	return &CloseSession{Meta: WriteMeta{Session: sess}, Expired: true}
}

func ephemerals(h *tester, id uint64) int {
	info, ok := h.f.Session(id)
	if !ok {
		h.t.Fatalf("session %d does not exist", id)
	}
	return info.Ephemerals
}

func TestSessions(t *testing.T) {
	h := newTester(t, Config{})
	r := h.must(&CreateSession{Time: 300, LeaseMillis: 5000, ClientName: "three"})
	if r.Session != 3 {
		t.Fatalf("session id %d, want the index 3", r.Session)
	}
	want := []SessionInfo{
		{ID: 1, Created: 100, LeaseMillis: 12000, ClientName: "one"},
		{ID: 2, Created: 200, LeaseMillis: 12000, ClientName: "two"},
		{ID: 3, Created: 300, LeaseMillis: 5000, ClientName: "three"},
	}
	if got := h.f.Sessions(); !slices.Equal(got, want) {
		t.Fatalf("Sessions() = %+v", got)
	}
	h.run([]step{
		{closeS(s1, 0), ErrKindOK},
		{mkfile(s1, "/a", ""), ErrKindSessionExpired},
		{closeS(s1, 0), ErrKindSessionExpired},
		{expire(s1), ErrKindSessionExpired},
		{expire(0), ErrKindSessionExpired},
		{closeS(0, 0), ErrKindSessionExpired},
		{expire(s2), ErrKindOK},
		{set(s2, "/", ""), ErrKindSessionExpired},
	})
	if got := h.f.Sessions(); len(got) != 1 || got[0].ID != 3 {
		t.Fatalf("Sessions() = %+v", got)
	}
	if _, ok := h.f.Session(s1); ok {
		t.Fatal("closed session still exists")
	}
}

func TestEphemerals(t *testing.T) {
	const ok = ErrKindOK
	runCases(t, Config{}, []nsCase{
		{name: "close deletes all", steps: []step{
			{ephFile(s1, "/e"), ok}, {ephDir(s1, "/d"), ok}, {ephFile(s1, "/d/x"), ok},
			{ephDir(s1, "/d/y"), ok}, {ephFile(s1, "/d/y/z"), ok}, {mkfile(s1, "/perm", ""), ok},
			{closeS(s1, 0), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			h.absent("/e", "/d", "/d/x", "/d/y", "/d/y/z")
			if h.node("/perm").Stat.EphemeralOwner != 0 || h.node("/").Stat.Children != 1 {
				t.Fatal("permanent node gone or bad child count")
			}
		}},
		{name: "expiry deletes all", steps: []step{{ephDir(s1, "/d"), ok}, {ephFile(s1, "/d/x"), ok}, {expire(s1), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) { h.absent("/d", "/d/x") }},
		{name: "stats and count", steps: []step{{ephFile(s2, "/e"), ok}, {ephDir(s2, "/d"), ok}, {del(s1, "/e"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if h.node("/d").Stat.EphemeralOwner != s2 || ephemerals(h, s2) != 1 || ephemerals(h, s1) != 0 {
					t.Fatal("bad owner or ephemeral count")
				}
			}},
		{name: "dir with permanent child stays then cascades", steps: []step{
			{ephDir(s1, "/d"), ok}, {mkfile(s2, "/d/p", ""), ok}, {closeS(s1, 0), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			if h.node("/d").Stat.EphemeralOwner != s1 {
				t.Fatal("leftover ephemeral dir lost its owner")
			}
			h.run([]step{{del(s2, "/d/p"), ok}})
			h.absent("/d", "/d/p")
		}},
		{name: "dir with other session's ephemeral", steps: []step{
			{ephDir(s1, "/d"), ok}, {ephFile(s2, "/d/q"), ok}, {closeS(s1, 0), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			h.node("/d")
			h.run([]step{{expire(s2), ok}})
			h.absent("/d", "/d/q")
		}},
		{name: "cascade several levels", steps: []step{
			{mkdir(0, "/p"), ok}, {ephDir(s1, "/p/a"), ok}, {ephDir(s1, "/p/a/b"), ok},
			{mkfile(s2, "/p/a/b/c", ""), ok}, {del(s2, "/p/a/b/c"), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			h.absent("/p/a", "/p/a/b")
			if h.node("/p").Stat.Children != 0 || ephemerals(h, s1) != 0 {
				t.Fatal("cascade left counts behind")
			}
		}},
		{name: "empty ephemeral dir stays until a delete", steps: []step{{ephDir(s1, "/d"), ok}, {ephDir(s1, "/d/e"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				h.node("/d/e")
				h.run([]step{{del(s2, "/d/e"), ok}})
				h.absent("/d")
			}},
		{name: "create may keeps owner", steps: []step{{ephFile(s1, "/e"), ok},
			{withCreate(ephFile(s2, "/e"), 1), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if ephemerals(h, s2) != 0 || h.node("/e").Stat.EphemeralOwner != s1 {
					t.Fatal("CreateMay on an existing node took ownership")
				}
			}},
	})
}

func TestDedup(t *testing.T) {
	const ok = ErrKindOK
	m := func(seqNo, ack uint64) WriteMeta { return seq(WriteMeta{Session: s1}, seqNo, ack) }
	openSeq := func(seqNo, ack uint64, path string) *Open {
		o := mkfile(s1, path, "x")
		o.Meta = m(seqNo, ack)
		return o
	}
	setSeq := func(seqNo, ack uint64) *SetContents { c := set(s1, "/a", "y"); c.Meta = m(seqNo, ack); return c }
	runCases(t, Config{}, []nsCase{
		{name: "retry returns stored result", steps: []step{{openSeq(1, 0, "/a"), ok}, {openSeq(1, 0, "/a"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if !reflect.DeepEqual(rs[0], rs[1]) || !rs[1].Created {
					t.Fatalf("retry got %+v, want %+v", rs[1], rs[0])
				}
			}},
		{name: "retry does not reapply", steps: []step{{mkfile(0, "/a", ""), ok}, {setSeq(1, 0), ok}, {setSeq(1, 0), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if g := h.node("/a").Stat.ContentGeneration; g != 2 || rs[2].Stat.ModifiedRevision != 4 {
					t.Fatalf("generation %d, result %+v", g, rs[2])
				}
			}},
		{name: "retry returns stored error", steps: []step{{setSeq(1, 0), ErrKindNotExist}, {openSeq(2, 0, "/a"), ok}, {setSeq(1, 0), ErrKindNotExist}}},
		{name: "seq 0 not deduplicated", steps: []step{{openSeq(0, 0, "/a"), ok}, {openSeq(0, 0, "/a"), ErrKindExist}}},
		{name: "admin not deduplicated", steps: []step{{&Open{Meta: WriteMeta{Seq: 1}, Path: "/a", Create: 2}, ok},
			{&Open{Meta: WriteMeta{Seq: 1}, Path: "/a", Create: 2}, ErrKindExist}}},
		{name: "ack prunes", steps: []step{
			{openSeq(1, 0, "/a"), ok}, {openSeq(2, 0, "/b"), ok}, {openSeq(3, 0, "/c"), ok}, {openSeq(4, 3, "/d"), ok},
			{openSeq(2, 3, "/b"), ErrKindBadRequest}, {openSeq(3, 3, "/c"), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			s := h.f.sessions[s1]
			if s.ackBelow != 3 || len(s.replies) != 2 || !reflect.DeepEqual(rs[5], rs[2]) {
				t.Fatalf("ackBelow %d, replies %v", s.ackBelow, s.replies)
			}
			if !strings.Contains(rs[4].ErrMsg, "stale sequence number") {
				t.Fatalf("message %q", rs[4].ErrMsg)
			}
		}},
		{name: "ack on retry and never lowered", steps: []step{
			{openSeq(5, 0, "/a"), ok}, {openSeq(6, 0, "/b"), ok}, {openSeq(6, 6, "/b"), ok}, {openSeq(7, 2, "/c"), ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			if s := h.f.sessions[s1]; s.ackBelow != 6 || len(s.replies) != 2 {
				t.Fatalf("ackBelow %d, replies %v", s.ackBelow, s.replies)
			}
		}},
		{name: "client close retried", steps: []step{{closeS(s1, 9), ok}, {closeS(s1, 9), ErrKindSessionExpired}}},
		{name: "sessions are separate", steps: []step{{openSeq(1, 0, "/a"), ok},
			{&Open{Meta: WriteMeta{Session: s2, Seq: 1}, Path: "/a", Create: 2}, ErrKindExist}}},
	})
}

// TestStaleTerm: a write prepared (its cached copies invalidated) in one
// term and appended in another fails without effect, and its retry in the
// right term applies: the failure is not kept in the dedup table. A write
// already applied is answered from the dedup table, whatever its term.
func TestStaleTerm(t *testing.T) {
	h := newTester(t, Config{})
	h.term = 1
	h.must(mkfile(0, "/a", "x"))
	setAt := func(term, seqNo uint64, data string) *SetContents {
		c := set(s1, "/a", data)
		c.Meta = seq(WriteMeta{Session: s1, Term: term}, seqNo, 0)
		return c
	}
	h.term = 3 // the replica stepped down in term 1 and leads term 3
	if r := h.apply(setAt(1, 1, "y")); r.ErrKind != ErrKindStaleTerm {
		t.Fatalf("a write of term 1 appended in term 3: %+v", r)
	}
	if n := h.node("/a"); string(n.Data) != "x" || n.Stat.ContentGeneration != 1 {
		t.Fatalf("a stale write changed /a: %q, generation %d", n.Data, n.Stat.ContentGeneration)
	}
	if r := h.apply(setAt(3, 1, "y")); r.ErrKind != ErrKindOK || r.Stat.ContentGeneration != 2 {
		t.Fatalf("the retry in term 3: %+v", r)
	}
	// Appended again in a later term (a retry the client never saw
	// answered): the stored answer, no second apply.
	h.term = 4
	if r := h.apply(setAt(3, 1, "y")); r.ErrKind != ErrKindOK || r.Stat.ContentGeneration != 2 {
		t.Fatalf("the applied write, appended again in term 4: %+v", r)
	}
	// A session expiry prepared in another term is refused too.
	exp := &CloseSession{Meta: WriteMeta{Session: s2, Time: 1, Term: 3}, Expired: true}
	if r := h.apply(exp); r.ErrKind != ErrKindStaleTerm {
		t.Fatalf("an expiry of term 3 appended in term 4: %+v", r)
	}
	if _, ok := h.f.sessions[s2]; !ok {
		t.Fatal("a stale expiry ended the session")
	}
	// Unstamped commands (Term 0: older log entries) are not checked.
	if r := h.apply(set(0, "/a", "z")); r.ErrKind != ErrKindOK {
		t.Fatalf("an unstamped write: %+v", r)
	}
}

func TestTooManyUnacked(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkfile(0, "/a", ""))
	for i := uint64(1); i <= MaxUnacked; i++ {
		h.must(&SetContents{Meta: WriteMeta{Session: s1, Seq: i}, Path: "/a"})
	}
	gen := h.node("/a").Stat.ContentGeneration
	r := h.apply(&SetContents{Meta: WriteMeta{Session: s1, Seq: MaxUnacked + 1}, Path: "/a"})
	if r.ErrKind != ErrKindBadRequest || !strings.Contains(r.ErrMsg, "too many unacknowledged writes") {
		t.Fatalf("got %+v", r)
	}
	if h.node("/a").Stat.ContentGeneration != gen {
		t.Fatal("the refused write was applied")
	}
	h.must(&SetContents{Meta: WriteMeta{Session: s1, Seq: MaxUnacked + 1, AckBelow: 10}, Path: "/a"})
	if n := len(h.f.sessions[s1].replies); n != MaxUnacked-8 {
		t.Fatalf("%d replies stored", n)
	}
	checkInvariants(t, h.f)
}
