package raftstore

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// openTest opens a store in dir (a fresh temp dir if empty) and closes it
// when the test ends.
func openTest(tb testing.TB, dir string) *Store {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	s, err := Open(DefaultOptions(dir))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// makeLog builds a deterministic log whose fields vary with idx so that
// every field (including nil Data/Extensions and zero AppendedAt) is
// exercised.
func makeLog(idx, term uint64) *raft.Log {
	l := &raft.Log{
		Index: idx,
		Term:  term,
		Type:  raft.LogType(idx % 6),
		Data:  fmt.Appendf(nil, "cmd-%d-term-%d", idx, term),
	}
	switch idx % 4 {
	case 0:
		l.Data = nil
	case 1:
		l.Extensions = []byte{byte(idx), 0, 0xff}
		l.AppendedAt = time.Unix(1_700_000_000+int64(idx), int64(idx)).UTC()
	case 2:
		l.Extensions = []byte{}
		l.AppendedAt = time.Unix(1_700_000_000, 0).In(time.FixedZone("x", 3600))
	}
	return l
}

// makeLogs returns makeLog(i, term) for i in [lo, hi].
func makeLogs(lo, hi, term uint64) []*raft.Log {
	logs := make([]*raft.Log, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		logs = append(logs, makeLog(i, term))
	}
	return logs
}

// sameLog reports whether a and b are equal field by field; times compare
// with Equal (the monotonic reading and *Location may differ).
func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

// mustLog fails tb unless s holds exactly want at want.Index.
func mustLog(tb testing.TB, s raft.LogStore, want *raft.Log) {
	tb.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		tb.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if !sameLog(&got, want) {
		tb.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
	}
}

// mustBounds fails tb unless s reports the given first and last index.
func mustBounds(tb testing.TB, s raft.LogStore, first, last uint64) {
	tb.Helper()
	f, err := s.FirstIndex()
	if err != nil || f != first {
		tb.Fatalf("FirstIndex = %d, %v; want %d", f, err, first)
	}
	l, err := s.LastIndex()
	if err != nil || l != last {
		tb.Fatalf("LastIndex = %d, %v; want %d", l, err, last)
	}
}
