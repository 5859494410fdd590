package raftstore

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// TestReopenReadBack writes logs (small and value-log sized) and stable
// keys, deletes some, closes cleanly and checks a reopened store sees
// exactly the same state.
func TestReopenReadBack(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(DefaultOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	var want []*raft.Log
	for lo := uint64(1); lo <= 1000; lo += 50 {
		batch := makeLogs(lo, lo+49, lo/100+1)
		batch[7].Data = bytes.Repeat([]byte{byte(lo)}, 20<<10) // > value threshold
		want = append(want, batch...)
		if err := s.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRange(1, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(951, 1000); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir)
	mustBounds(t, s, 101, 950)
	for _, l := range want[100:950] {
		mustLog(t, s, l)
	}
	for _, idx := range []uint64{1, 100, 951, 1000} {
		var l raft.Log
		if err := s.GetLog(idx, &l); err != raft.ErrLogNotFound {
			t.Fatalf("deleted log %d: err = %v", idx, err)
		}
	}
	mustStable(t, s)
}

func mustSet(t *testing.T, s *Store) {
	t.Helper()
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-3")); err != nil {
		t.Fatal(err)
	}
}

func mustStable(t *testing.T, s *Store) {
	t.Helper()
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-3" {
		t.Fatalf("LastVoteCand = %q, %v", v, err)
	}
}
