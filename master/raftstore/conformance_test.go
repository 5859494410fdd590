package raftstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// both is what the conformance steps need from a store under test.
type both interface {
	raft.LogStore
	raft.StableStore
}

// outcome is one step's observable result: a rendering of the values and
// the error, compared separately so error identity can be checked.
type outcome struct {
	text string
	err  error
}

type step struct {
	desc string
	run  func(s both) outcome
}

func storeLogs(lo, hi, term uint64) step {
	return step{fmt.Sprintf("StoreLogs[%d..%d]t%d", lo, hi, term), func(s both) outcome {
		return outcome{err: s.StoreLogs(makeLogs(lo, hi, term))}
	}}
}

func storeLog(idx, term uint64) step {
	return step{fmt.Sprintf("StoreLog(%d)t%d", idx, term), func(s both) outcome {
		return outcome{err: s.StoreLog(makeLog(idx, term))}
	}}
}

func del(lo, hi uint64) step {
	return step{fmt.Sprintf("DeleteRange(%d,%d)", lo, hi), func(s both) outcome {
		return outcome{err: s.DeleteRange(lo, hi)}
	}}
}

func set(k, v string) step {
	return step{fmt.Sprintf("Set(%q,%q)", k, v), func(s both) outcome {
		return outcome{err: s.Set([]byte(k), []byte(v))}
	}}
}

func get(k string) step {
	return step{fmt.Sprintf("Get(%q)", k), func(s both) outcome {
		v, err := s.Get([]byte(k))
		return outcome{fmt.Sprintf("%q", v), err}
	}}
}

func setU(k string, v uint64) step {
	return step{fmt.Sprintf("SetUint64(%q,%d)", k, v), func(s both) outcome {
		return outcome{err: s.SetUint64([]byte(k), v)}
	}}
}

// getU normalises the one documented divergence: raft.InmemStore returns
// (0, nil) for a missing key, this store (0, ErrKeyNotFound) like
// raft-boltdb. TestStableMissingKeys checks our side exactly.
func getU(k string) step {
	return step{fmt.Sprintf("GetUint64(%q)", k), func(s both) outcome {
		v, err := s.GetUint64([]byte(k))
		if err != nil && err.Error() == "not found" && v == 0 {
			err = nil
		}
		return outcome{fmt.Sprint(v), err}
	}}
}

// observe renders FirstIndex, LastIndex and GetLog for every index in
// [0, window+1]; it runs after every step.
func observe(s both, window uint64) []outcome {
	f, ferr := s.FirstIndex()
	l, lerr := s.LastIndex()
	out := []outcome{{fmt.Sprint("first=", f), ferr}, {fmt.Sprint("last=", l), lerr}}
	for i := uint64(0); i <= window+1; i++ {
		var got raft.Log
		err := s.GetLog(i, &got)
		text := ""
		if err == nil {
			text = fmt.Sprintf("%d/%d/%d/%q/%q/%d", got.Index, got.Term, got.Type,
				got.Data, got.Extensions, got.AppendedAt.UnixNano())
		}
		out = append(out, outcome{fmt.Sprintf("log %d: %s", i, text), err})
	}
	return out
}

// sameErr: both nil, the identical raft.ErrLogNotFound, or both the
// "not found" stable-store error (raft compares that by text).
func sameErr(ours, ref error) bool {
	switch {
	case ref == nil || ours == nil:
		return ref == nil && ours == nil
	case ref == raft.ErrLogNotFound:
		return ours == raft.ErrLogNotFound
	case ref.Error() == "not found":
		return errors.Is(ours, ErrKeyNotFound) && ours.Error() == "not found"
	}
	return ours.Error() == ref.Error()
}

func compare(t *testing.T, where string, ours, ref outcome) {
	t.Helper()
	if ours.text != ref.text || !sameErr(ours.err, ref.err) {
		t.Fatalf("%s:\n ours: %q err=%v\n  ref: %q err=%v", where, ours.text, ours.err, ref.text, ref.err)
	}
}

// conformanceCases avoid raft.InmemStore's approximations (it tracks
// first/last with counters, so deleting below a hole or storing below its
// first index confuses it); raft itself never issues such sequences.
var conformanceCases = []struct {
	name   string
	window uint64
	steps  []step
}{
	{"empty store", 12, []step{del(1, 10), get("k"), getU("k")}},
	{"single stores", 6, []step{storeLog(1, 1), storeLog(2, 1), storeLog(3, 2)}},
	{"batch store", 12, []step{storeLogs(1, 10, 1)}},
	{"delete prefix then suffix", 12, []step{storeLogs(1, 10, 1), del(1, 3), del(8, 10), del(4, 4), del(7, 7)}},
	{"min greater than max", 12, []step{storeLogs(1, 10, 1), del(5, 3), del(10, 9), del(2, 1)}},
	{"range beyond ends", 12, []step{storeLogs(5, 10, 1), del(1, 6), del(9, 100)}},
	{"delete all exactly", 12, []step{storeLogs(1, 10, 1), del(1, 10), del(1, 10)}},
	{"delete superset", 12, []step{storeLogs(3, 7, 1), del(1, 100)}},
	{"restore after delete all", 17, []step{storeLogs(1, 10, 1), del(1, 10), storeLogs(11, 15, 2), storeLog(16, 2)}},
	{"conflict truncation", 12, []step{storeLogs(1, 10, 1), del(6, 10), storeLogs(6, 8, 2), storeLog(9, 3)}},
	{"ranges spanning holes", 22, []step{storeLogs(1, 20, 1), del(5, 8), del(3, 10), del(1, 12), del(14, 16), del(13, 30)}},
	{"overwrite", 6, []step{storeLogs(1, 5, 1), storeLog(3, 7), storeLogs(2, 4, 9)}},
	{"gap like snapshot restore", 105, []step{storeLogs(1, 5, 1), storeLogs(100, 102, 2), del(1, 99), del(101, 102)}},
	{"large ranges", 3100, []step{storeLogs(1, 3000, 1), del(1, 1500), del(2800, 5000), del(1, 4000)}},
	{"stable store", 0, []step{
		set("a", "1"), get("a"), get("b"), set("a", "2"), get("a"),
		setU("CurrentTerm", 5), getU("CurrentTerm"), getU("missing"), setU("CurrentTerm", 1<<63), getU("CurrentTerm"),
		set("bin\x00\xff", "\x00\x01"), get("bin\x00\xff"), get("bin"),
	}},
}

func TestConformanceWithInmemStore(t *testing.T) {
	for _, tc := range conformanceCases {
		t.Run(tc.name, func(t *testing.T) {
			ours, ref := openTest(t, ""), raft.NewInmemStore()
			check := func(after string) {
				o, r := observe(ours, tc.window), observe(ref, tc.window)
				for i := range r {
					compare(t, after, o[i], r[i])
				}
			}
			check("initially")
			for i, st := range tc.steps {
				where := fmt.Sprintf("step %d %s", i, st.desc)
				compare(t, where, st.run(ours), st.run(ref))
				check("after " + where)
			}
		})
	}
}

func TestStableMissingKeys(t *testing.T) {
	s := openTest(t, "")
	if v, err := s.Get([]byte("nope")); err != ErrKeyNotFound || v != nil {
		t.Fatalf("Get missing = %q, %v; want nil, ErrKeyNotFound", v, err)
	}
	if v, err := s.GetUint64([]byte("nope")); err != ErrKeyNotFound || v != 0 {
		t.Fatalf("GetUint64 missing = %d, %v; want 0, ErrKeyNotFound", v, err)
	}
	if ErrKeyNotFound.Error() != "not found" {
		t.Fatalf("ErrKeyNotFound text = %q", ErrKeyNotFound.Error())
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("empty")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get empty = %#v, %v; want []byte{}, nil", v, err)
	}
	if _, err := s.GetUint64([]byte("empty")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUint64 of 0-byte value: err = %v, want ErrCorrupt", err)
	}
}

func TestGetLogMissingIsExactSentinel(t *testing.T) {
	s := openTest(t, "")
	if err := s.StoreLogs(makeLogs(1, 3, 1)); err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint64{0, 4, 1 << 63} {
		var l raft.Log
		if err := s.GetLog(idx, &l); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) err = %v, want raft.ErrLogNotFound", idx, err)
		}
	}
}

// TestDeleteHugeRange covers ranges far too large to walk index by index
// (raft.InmemStore would loop 2^62 times, so it is not compared here).
func TestDeleteHugeRange(t *testing.T) {
	s := openTest(t, "")
	if err := s.StoreLogs(makeLogs(1, 100, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(makeLogs(1<<40, 1<<40+9, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(51, 1<<62); err != nil {
		t.Fatal(err)
	}
	mustBounds(t, s, 1, 50)
	if err := s.DeleteRange(0, 1<<63); err != nil {
		t.Fatal(err)
	}
	mustBounds(t, s, 0, 0)
	if err := s.DeleteRange(0, ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLog(makeLog(^uint64(0), 3)); err != nil {
		t.Fatal(err)
	}
	mustBounds(t, s, ^uint64(0), ^uint64(0))
	mustLog(t, s, makeLog(^uint64(0), 3))
}
