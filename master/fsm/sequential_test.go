package fsm

import (
	"strings"
	"testing"

	"github.com/haspcell/hasp/fsapi"
)

func seqOpen(sess uint64, prefix string) *Open {
	o := mkfile(sess, prefix, "")
	o.Sequential = true
	return o
}

// TestSequentialNames: each directory numbers its sequential creates
// 0, 1, 2, … whatever the prefix, zero-padded to ten digits.
func TestSequentialNames(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkdir(s1, "/q"))
	h.must(mkdir(s1, "/r"))
	var got []string
	for _, p := range []string{"/q/job-", "/q/job-", "/r/x", "/q/other-", "/q/job-"} {
		r := h.must(seqOpen(s1, p))
		if !r.Created || h.node(r.Path).Stat != r.Stat {
			t.Fatalf("%s: result %+v does not describe the node created", p, r)
		}
		got = append(got, r.Path)
	}
	want := []string{"/q/job-0000000000", "/q/job-0000000001", "/r/x0000000000", "/q/other-0000000002", "/q/job-0000000003"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("names %v, want %v", got, want)
	}
	if h.node("/q").NextSequence != 4 || h.node("/r").NextSequence != 1 || h.node("/").NextSequence != 0 {
		t.Fatalf("counters: /q %d, /r %d", h.node("/q").NextSequence, h.node("/r").NextSequence)
	}
	checkInvariants(t, h.f)
}

// TestSequentialNeverReused: deleting the newest node does not give its
// number back, a name taken by a plain create is skipped, and a retried
// create (same session and sequence number) gets its first answer without
// taking another number.
func TestSequentialNeverReused(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkdir(s1, "/q"))
	first := h.must(seqOpen(s1, "/q/n-")).Path
	h.must(del(s1, first))
	if r := h.must(seqOpen(s1, "/q/n-")); r.Path != "/q/n-0000000001" {
		t.Fatalf("after delete: %s", r.Path)
	}
	h.must(mkfile(s1, "/q/n-0000000002", "by hand"))
	h.must(mkfile(s1, "/q/n-0000000003", "by hand"))
	if r := h.must(seqOpen(s1, "/q/n-")); r.Path != "/q/n-0000000004" {
		t.Fatalf("taken names not skipped: %s", r.Path)
	}
	o := seqOpen(s2, "/q/n-")
	o.Meta = seq(o.Meta, 1, 1)
	a, b := h.must(o), h.must(o)
	if a.Path != "/q/n-0000000005" || b.Path != a.Path || b.Stat != a.Stat || h.node("/q").NextSequence != 6 {
		t.Fatalf("retry: %+v then %+v, counter %d", a, b, h.node("/q").NextSequence)
	}
}

// TestSequentialEphemeral: sequential ephemeral nodes go with their
// session, and their numbers are not reused after.
func TestSequentialEphemeral(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkdir(0, "/q"))
	o := seqOpen(s2, "/q/member-")
	o.Ephemeral = true
	p := h.must(o).Path
	if n := h.node(p); n.Stat.EphemeralOwner != s2 {
		t.Fatalf("%s owner %d", p, n.Stat.EphemeralOwner)
	}
	h.must(&CloseSession{Meta: WriteMeta{Session: s2}})
	h.absent(p)
	if r := h.must(seqOpen(s1, "/q/member-")); r.Path != "/q/member-0000000001" {
		t.Fatalf("after the session ended: %s", r.Path)
	}
}

// TestSequentialErrors: bad prefixes, parents and an exhausted counter
// fail without changing the counter.
func TestSequentialErrors(t *testing.T) {
	long := "/q/" + strings.Repeat("x", fsapi.MaxComponentLen-fsapi.SequenceDigits+1)
	h := newTester(t, Config{ContentLimit: 4})
	h.must(mkdir(s1, "/q"))
	h.must(mkfile(s1, "/f", ""))
	noSession := seqOpen(0, "/q/e-")
	noSession.Ephemeral = true
	bigData := seqOpen(s1, "/q/big-")
	bigData.Contents = []byte("12345")
	h.run([]step{
		{seqOpen(s1, "/"), ErrKindBadName},
		{seqOpen(s1, long), ErrKindBadName},
		{seqOpen(s1, "/missing/x-"), ErrKindNotExist},
		{seqOpen(s1, "/f/x-"), ErrKindNotDir},
		{withCreate(seqOpen(s1, "/q/x-"), fsapi.CreateNo), ErrKindBadRequest},
		{noSession, ErrKindBadRequest},
		{bigData, ErrKindTooLarge},
	})
	if n := h.node("/q").NextSequence; n != 0 {
		t.Fatalf("failed creates moved the counter to %d", n)
	}
	// Near the end: the last number is used, then the counter is spent.
	setCounter(h, "/q", fsapi.MaxSequence)
	if r := h.must(seqOpen(s1, "/q/x-")); r.Path != "/q/x-9999999999" {
		t.Fatalf("last number: %s", r.Path)
	}
	r := h.apply(seqOpen(s1, "/q/x-"))
	if r.ErrKind != ErrKindSequenceExhausted || !strings.Contains(r.ErrMsg, "new directory") {
		t.Fatalf("past the last number: %+v", r)
	}
	checkInvariants(t, h.f)
	// A new directory instance starts again at 0.
	h.must(del(s1, "/q/x-9999999999"))
	h.must(del(s1, "/q"))
	h.must(mkdir(s1, "/q"))
	if r := h.must(seqOpen(s1, "/q/x-")); r.Path != "/q/x-0000000000" {
		t.Fatalf("new directory: %s", r.Path)
	}
}

// setCounter sets a directory's counter directly, as if that many
// sequential creates had happened.
func setCounter(h *tester, dir string, next uint64) {
	cp := *h.node(dir)
	cp.NextSequence = next
	tx := h.f.View().tree.Txn()
	tx.Insert(nodeKey(dir), &cp)
	h.f.publish(&View{tree: tx.Commit(), rev: h.f.AppliedIndex()})
}

// TestSequentialSnapshot: the counter is in the snapshot, so a replica
// restored from one goes on numbering where the others are.
func TestSequentialSnapshot(t *testing.T) {
	h := newTester(t, Config{})
	h.must(mkdir(s1, "/q"))
	for range 3 {
		h.must(seqOpen(s1, "/q/n-"))
	}
	data := snapshotBytes(t, h.f)
	r := restored(t, data, Config{})
	if got := r.must(seqOpen(s1, "/q/n-")).Path; got != "/q/n-0000000003" {
		t.Fatalf("after restore: %s", got)
	}
	// A state that never used a counter encodes no counter field.
	plain := newTester(t, Config{})
	plain.must(mkdir(s1, "/q"))
	if strings.Contains(string(snapshotBytes(t, plain.f)), "NextSequence") {
		t.Fatal("a zero counter is in the snapshot")
	}
}
