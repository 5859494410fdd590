package fsm

import (
	"bytes"
	"io"
	"reflect"
	"testing"
)

// applyLog applies n generated commands to every FSM and checks that they
// all return the same results.
func applyLog(t *testing.T, g *cmdGen, n int, hs ...*tester) map[ErrKind]int {
	t.Helper()
	kinds := map[ErrKind]int{}
	for i := range n {
		cmd := g.next()
		var first *Result
		for _, h := range hs {
			r := h.apply(cmd)
			if first == nil {
				first = r
			} else if !reflect.DeepEqual(r, first) {
				t.Fatalf("command %d (%+v): results differ: %+v vs %+v", i, cmd, first, r)
			}
		}
		kinds[first.ErrKind]++
		if i%250 == 0 {
			checkInvariants(t, hs[0].f)
		}
	}
	checkInvariants(t, hs[0].f)
	return kinds
}

func restored(t *testing.T, data []byte, cfg Config) *tester {
	t.Helper()
	f := New(cfg)
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	return &tester{t: t, f: f, index: f.AppliedIndex()}
}

func viewNodes(v *View) []snapNode {
	var out []snapNode
	v.walk(func(p string, n *Node) { out = append(out, snapNode{Path: p, Node: *n}) })
	return out
}

func TestDeterminism(t *testing.T) {
	seed := testSeed(t)
	a, b := newTester(t, Config{ContentLimit: 10}), newTester(t, Config{ContentLimit: 10})
	kinds := applyLog(t, newCmdGen(seed, 3), 3000, a, b)
	t.Logf("results by kind: %v", kinds)
	sa, sb := snapshotBytes(t, a.f), snapshotBytes(t, b.f)
	if !bytes.Equal(sa, sb) {
		t.Fatal("two FSMs fed the same log have different snapshots")
	}
	ls := a.f.locks.State()
	t.Logf("%d nodes, %d sessions, %d locks (last waiter %d), snapshot %d bytes",
		a.f.View().NodeCount(), len(a.f.Sessions()), len(ls.Locks), ls.LastWaiter, len(sa))

	c := restored(t, sa, a.f.Config())
	if sc := snapshotBytes(t, c.f); !bytes.Equal(sa, sc) {
		t.Fatal("snapshot → restore → snapshot changed the bytes")
	}
	if !reflect.DeepEqual(viewNodes(a.f.View()), viewNodes(c.f.View())) ||
		!reflect.DeepEqual(a.f.Sessions(), c.f.Sessions()) || a.f.AppliedIndex() != c.f.AppliedIndex() {
		t.Fatal("restored state differs")
	}
	// The restored FSM must behave identically from here on, which
	// exercises the restored dedup tables and ephemeral sets.
	applyLog(t, newCmdGen(seed+1, a.index+1), 1000, a, c)
	if !bytes.Equal(snapshotBytes(t, a.f), snapshotBytes(t, c.f)) {
		t.Fatal("original and restored FSMs diverged")
	}
}

func TestRestoreReplacesState(t *testing.T) {
	src := newTester(t, Config{})
	src.run([]step{{ephDir(s1, "/d"), ErrKindOK}, {mkfile(s2, "/d/f", "x"), ErrKindOK}})
	data := snapshotBytes(t, src.f)

	dst := newTester(t, Config{})
	applyLog(t, newCmdGen(1, 3), 200, dst)
	if err := dst.f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, dst.f), data) || dst.f.AppliedIndex() != 4 {
		t.Fatal("restore did not replace the state")
	}
	dst.index = 4
	dst.run([]step{{del(s2, "/d/f"), ErrKindOK}})
	dst.absent("/d") // the cascade works on the restored ephemeral set
}
